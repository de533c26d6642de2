module github.com/tunnelmesh/tunnelmesh/agent

go 1.26.0

require github.com/tunnelmesh/tunnelmesh/shared v0.0.0

replace github.com/tunnelmesh/tunnelmesh/shared => ../shared

require github.com/tunnelmesh/tunnelmesh/registry v0.0.0

replace github.com/tunnelmesh/tunnelmesh/registry => ../registry
