// A stand-in for monis.app/mlog v0.0.2, which the Go module proxy refuses (403 "This
// module version is not available"). The driver's pkg/secrets-store imports it in
// server.go only, for mlog.Fatal in its own gRPC server, which this program never runs.
module monis.app/mlog

go 1.21
