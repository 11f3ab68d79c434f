// Package mlog stands in for monis.app/mlog (see go.mod): only what the driver's
// cmd/secrets-store-csi-driver and pkg/secrets-store call, written on klog.
package mlog

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// LogFormat is the output format of klog.
type LogFormat string

// The two formats the driver's --log-format-json chooses between.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup makes klog the logger of controller-runtime too: without it a fatal error
// inside controller-runtime (a refused list, a bad kubeconfig) exits 1 with no message.
// It returns the flush the driver defers.
func Setup() func() {
	ctrl.SetLogger(klog.NewKlogr())
	return klog.Flush
}

// ValidateAndSetKlogLevelAndFormatGlobally accepts the level the driver's -v set; the
// stand-in writes text whatever the format (the tests read the log, not parse it).
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid klog level %d", level)
	}
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("unknown log format %q", format)
	}
	return nil
}

// Error logs err with msg.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal logs err and exits, as the real mlog.Fatal does.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(1)
}
