// Package frames defines the chat protocol's WebSocket frames (one JSON object per
// frame, documented in docs/websocket.md) and the Redis pub/sub channels that carry
// server frames from the session service to the gateways holding the sockets.
//
// A fan-out payload is an 8-byte big-endian timestamp (Unix nanoseconds at which the
// gateway accepted the message, 0 when not applicable) followed by the frame's JSON,
// so gateways can measure delivery latency without re-encoding the frame.
package frames
