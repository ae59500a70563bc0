"""Timed frames from an engine to a sink.

A render is a chain of small steps over iterators of frozen, timed frames::

    frames_for(model, audio, phones)  engine session -> VideoFrame (pts in frames of 1/fps)
      -> with_alpha / over_background (optional: the person's matte, or a new background)
      -> a sink                       Mp4File (+ HLS), WebmAlphaFile; a live sink replaces it

Every frame keeps its ``pts`` and ``time_base`` from the engine to the sink, so a sink places
it in time without counting. Like ``media``, this package takes local paths, arrays and plain
arguments: no web, database or settings."""
