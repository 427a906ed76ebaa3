// Package frame is the wire codec of httpstream: the connection preface, the
// 9-octet frame header, the nine frame types and the header block that an
// OPEN frame carries. SPEC.md in this directory is the protocol's written
// definition; the checks in this package cite its sections.
//
// The package knows nothing about sessions or streams. Encoders append to a
// buffer the caller owns, so a writer can batch many frames without
// allocating. A Reader decodes frames from an io.Reader, checks every length
// against its Limits before it reads or allocates a payload, and reuses its
// buffers, so reading DATA frames allocates nothing once warm. What the frame
// package can judge from one frame alone (lengths, stream ID zero or not,
// increments, settings ranges, header block syntax) it checks; what needs
// session state (stream states, windows, identifiers in order) is checked by
// package mux.
//
// Errors carry their scope, as SPEC section 9.1 defines it: a *SessionError
// ends the whole session with GOAWAY, a *StreamError only refuses or resets
// one stream.
package frame
