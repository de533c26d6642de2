module github.com/tunnelmesh/tunnelmesh/testkit

go 1.26.0

require github.com/tunnelmesh/tunnelmesh/shared v0.0.0-00010101000000-000000000000

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/tunnelmesh/tunnelmesh/shared => ../shared
