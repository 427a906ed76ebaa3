module github.com/httpstream-go/httpstream/bench/peers

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/hashicorp/yamux v0.1.2
	github.com/httpstream-go/httpstream v0.0.0
	github.com/xtaci/smux v1.5.58
	k8s.io/streaming v0.37.2
)

require (
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/moby/spdystream v0.5.1 // indirect
	golang.org/x/net v0.57.0 // indirect
	k8s.io/klog/v2 v2.140.0 // indirect
	k8s.io/utils v0.0.0-20260626114624-be93311217bd // indirect
)

replace github.com/httpstream-go/httpstream => ../..
