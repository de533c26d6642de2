module github.com/tunnelmesh/tunnelmesh/sshgw

go 1.26.0

require (
	github.com/gliderlabs/ssh v0.3.8
	github.com/tunnelmesh/tunnelmesh/shared v0.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/anmitsu/go-shlex v0.0.0-20200514113438-38f4b401e2be // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/tunnelmesh/tunnelmesh/testkit v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/tunnelmesh/tunnelmesh/shared => ../shared

replace github.com/tunnelmesh/tunnelmesh/testkit => ../testkit
