"""The media plane over WebRTC (aiortc): the replica's tracks, the ``app-message`` data
channel, and one peer per participant (spec/realtime.md §2)."""
