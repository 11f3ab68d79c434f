// Package mlog stands in for monis.app/mlog (see go.mod): only what the driver's
// pkg/secrets-store calls.
package mlog

import (
	"fmt"
	"os"
)

// Fatal logs err and exits, as the real mlog.Fatal does.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(1)
}
