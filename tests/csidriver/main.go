// Command csikubelet plays the kubelet's part towards the Secrets Store CSI Driver
// (sigs.k8s.io/secrets-store-csi-driver, pinned in go.mod and built from the same module
// into .tools/secrets-store-csi-driver): one CSI call over the driver's unix socket, as
// the kubelet makes it for an inline ephemeral volume, and its outcome as one JSON line.
//
//	csikubelet probe     -endpoint unix:///dir/csi.sock
//	csikubelet publish   -endpoint unix:///dir/csi.sock -volume-id ID -target PATH -context JSON
//	csikubelet unpublish -endpoint unix:///dir/csi.sock -volume-id ID -target PATH
//
// publish sends NodePublishVolume (read-only, a mount volume, the volume context given
// as a JSON object of strings) after creating the target's parent directory, and
// removes the target after a final error, as the kubelet does; unpublish sends NodeUnpublishVolume. stdout: {"ok":true} or
// {"ok":false,"code":"Unknown","message":"..."}; the exit status is 0 whenever the call
// was answered, 2 for bad usage or no answer. Run by tests/it/driver_e2e.rs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// outcome is the one line printed on stdout.
type outcome struct {
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		usage(errors.New("no command"))
	}
	command := os.Args[1]
	flags := flag.NewFlagSet(command, flag.ExitOnError)
	endpoint := flags.String("endpoint", "", "the driver's endpoint, unix:///path/csi.sock")
	volumeID := flags.String("volume-id", "", "the volume handle (the kubelet's csi-<hash>)")
	target := flags.String("target", "", "the target path, <root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount")
	volumeContext := flags.String("context", "{}", "the volume context, a JSON object of strings")
	timeout := flags.Duration("timeout", 2*time.Minute, "deadline of the call")
	if err := flags.Parse(os.Args[2:]); err != nil {
		usage(err)
	}
	socket, found := strings.CutPrefix(*endpoint, "unix://")
	if !found || socket == "" {
		usage(fmt.Errorf("-endpoint must be unix:///path, not %q", *endpoint))
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		usage(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	switch command {
	case "probe":
		_, err = csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{})
	case "publish":
		err = publish(ctx, csi.NewNodeClient(conn), *volumeID, *target, *volumeContext)
	case "unpublish":
		_, err = csi.NewNodeClient(conn).NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{
			VolumeId:   *volumeID,
			TargetPath: *target,
		})
	default:
		usage(fmt.Errorf("unknown command %q", command))
	}
	report(err)
}

// publish makes the target's parent directory (the driver makes the target itself) and
// sends NodePublishVolume the way the kubelet does for an inline volume.
func publish(ctx context.Context, node csi.NodeClient, volumeID, target, contextJSON string) error {
	var attributes map[string]string
	if err := json.Unmarshal([]byte(contextJSON), &attributes); err != nil {
		usage(fmt.Errorf("-context: %w", err))
	}
	if volumeID == "" || target == "" {
		usage(errors.New("publish needs -volume-id and -target"))
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		usage(err)
	}
	_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   volumeID,
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      true,
		VolumeContext: attributes,
	})
	if err != nil && final(err) {
		// The kubelet removes the target after a final error (it stays if mounted or not
		// empty), so its next try is a first mount again.
		_ = os.Remove(target)
	}
	return err
}

// final says whether the kubelet treats err as the end of the operation (not "maybe
// still in progress"), as its CSI client does.
func final(err error) bool {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return false
	}
	return true
}

// report prints the outcome of an answered call; a call that got no answer (the
// socket missing, the deadline passed) is a status of its own and is reported too.
func report(err error) {
	out := outcome{OK: err == nil}
	if err != nil {
		s := status.Convert(err)
		out.Code = s.Code().String()
		out.Message = s.Message()
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func usage(err error) {
	fmt.Fprintln(os.Stderr, "csikubelet:", err)
	fmt.Fprintln(os.Stderr, "usage: csikubelet probe|publish|unpublish -endpoint unix:///path [-volume-id ID -target PATH -context JSON]")
	os.Exit(2)
}
