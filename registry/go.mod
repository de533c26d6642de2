module github.com/tunnelmesh/tunnelmesh/registry

go 1.26.0

require github.com/tunnelmesh/tunnelmesh/shared v0.0.0

replace github.com/tunnelmesh/tunnelmesh/shared => ../shared
