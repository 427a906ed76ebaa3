module github.com/httpstream-go/httpstream

go 1.25
