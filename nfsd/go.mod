module github.com/tunnelmesh/tunnelmesh/nfsd

go 1.26.0

require (
	github.com/go-git/go-billy/v5 v5.9.2
	github.com/prometheus/client_golang v1.24.1
	github.com/tunnelmesh/tunnelmesh/shared v0.0.0
	github.com/willscott/go-nfs v0.0.4
	github.com/willscott/go-nfs-client v0.0.0-20251022144359-801f10d98886
	go.uber.org/goleak v1.3.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.70.1 // indirect
	github.com/prometheus/procfs v0.21.1 // indirect
	github.com/rasky/go-xdr v0.0.0-20170124162913-1a41d1a06c93 // indirect
	github.com/tunnelmesh/tunnelmesh/testkit v0.0.0-00010101000000-000000000000
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)

replace github.com/tunnelmesh/tunnelmesh/shared => ../shared

replace github.com/tunnelmesh/tunnelmesh/testkit => ../testkit

replace github.com/willscott/go-nfs => ../third_party/go-nfs
