"""Real-time conversations: the replica's live voice and face, one clock for both, and the
Interactions Protocol that drives it. Pure: no web framework, database or settings here; the
media worker wires it to WebRTC (realtime/webrtc/) and to the conversation's rows."""
