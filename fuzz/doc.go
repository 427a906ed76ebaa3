// Package fuzz holds the native Go fuzz targets of httpstream: the frame
// decoder and the header-block decoder (frame_test.go), the WebSocket
// tunnel's frame reader (websocket_test.go), and the engine fed by a hostile
// peer. The package has no API; see README.md for how to run the
// targets for hours and what each one checks.
package fuzz
