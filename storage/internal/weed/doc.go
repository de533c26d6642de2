// Package weed runs SeaweedFS (`weed server`: master, volume server, filer
// and S3 gateway in one process) as a supervised child process.
//
// Every listener is bound explicitly: master, volume server and filer (and
// their gRPC ports, port+10000) to loopback; the S3 gateway (and its gRPC
// port, S3 port+10000) to the S3 bind address, which tunnelmesh-storage sets
// to the node's mesh address. The Iceberg (8181) and Lance (9101) listeners,
// the embedded IAM API and SeaweedFS's telemetry are switched off. Metrics
// listen only where configured.
//
// Supervisor.Run owns the child: it starts it, restarts it with exponential
// backoff when it exits on its own, forwards SIGHUP on Reload (SeaweedFS
// rereads its -s3.config identities file on SIGHUP), and on cancellation
// sends SIGTERM and waits for the child to exit (SIGKILL after StopTimeout;
// SeaweedFS takes about 30 s to stop on an idle server),
// so acknowledged writes are flushed before Run returns.
package weed
