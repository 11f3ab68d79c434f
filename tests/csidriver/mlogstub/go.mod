// A stand-in for monis.app/mlog v0.0.2, which the Go module proxy refuses (403 "This
// module version is not available"): the functions the driver's main and its
// pkg/secrets-store call, on klog.
module monis.app/mlog

go 1.21

require (
	k8s.io/klog/v2 v2.120.1
	sigs.k8s.io/controller-runtime v0.18.7
)
