// Command driverclient runs the Secrets Store CSI Driver's own provider client
// (sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store, pinned in go.mod) against
// our provider binary on a real unix socket, the way the driver's node server calls it.
//
//	driverclient -provider target/debug/secrets-store-csi-driver-provider-aws
//
// The provider runs with the local-file store (no AWS, no cluster). Every case prints
// one "ok" or "FAIL" line; the exit status is 1 when any case failed. Run by
// tests/driver_client.rs under ./scripts/test.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
	internalerrors "sigs.k8s.io/secrets-store-csi-driver/pkg/errors"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// The driver's default --max-call-recv-msg-size, passed the way its main.go does.
const maxCallRecvMsgSize = 4 * 1024 * 1024

// The driver marshals os.FileMode(0644) with encoding/json: "420".
const driverPermission = "420"

// Large-response case: 56 values of 64 KiB (the Secrets Manager maximum) are 3.5 MiB of
// file contents in one MountResponse, under the 4 MiB the driver accepts by default.
const (
	bigValueBytes = 64 * 1024
	bigCount      = 56
	// 66 x 64 KiB is more than 4 MiB: the provider must refuse it with its own message.
	overCount = 66
)

var verbose = flag.Bool("v", false, "print the provider's log and the driver's klog output")

func main() {
	bin := flag.String("provider", "", "path of the provider binary (secrets-store-csi-driver-provider-aws)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: driverclient -provider PATH [-v]")
		os.Exit(2)
	}
	logs := captureKlog()
	failed := 0
	for _, c := range cases {
		started := time.Now()
		err := runCase(*bin, c, logs)
		if err != nil {
			failed++
			fmt.Printf("FAIL %s (%s): %v\n", c.name, time.Since(started).Round(time.Millisecond), err)
			continue
		}
		fmt.Printf("ok   %s (%s)\n", c.name, time.Since(started).Round(time.Millisecond))
	}
	if failed > 0 {
		fmt.Printf("driverclient: %d of %d cases failed\n", failed, len(cases))
		os.Exit(1)
	}
	fmt.Printf("driverclient: all %d cases passed\n", len(cases))
}

type testCase struct {
	name  string
	flags []string // extra provider flags
	run   func(e *env) error
}

var cases = []testCase{
	{"version and health check", nil, versionAndHealthCheck},
	{"provider writes files, modes and versions; rotation", nil, providerWrites},
	{"driver writes (--driver-writes-secrets) files, modes and versions", []string{"--driver-writes-secrets=true"}, driverWrites},
	{"failure messages reach the driver (gRPC status)", nil, failureMessages},
	{"--error-codes: the driver gets our error code", []string{"--error-codes=true"}, errorCodes},
	{"3.5 MiB response through the driver's 4 MiB limit", []string{"--driver-writes-secrets=true"}, largeResponse},
	{"response over 4 MiB refused with our message", []string{"--driver-writes-secrets=true"}, overLimit},
}

// env is one provider process and the driver's client of it.
type env struct {
	dir     string
	store   string
	builder *secretsstore.PluginClientBuilder
	client  v1alpha1.CSIDriverProviderClient
	logs    *syncBuffer
	proc    *exec.Cmd
	exited  chan error
	seen    recorder
}

// recorder is a client interceptor: it sees each raw MountResponse and what the target
// directory held when it arrived, before MountContent's own writer ran.
type recorder struct {
	mu          sync.Mutex
	files       int      // files in the last MountResponse
	size        int      // its encoded size
	targetFiles []string // the target's entries when it arrived
}

func (r *recorder) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if resp, ok := reply.(*v1alpha1.MountResponse); ok && err == nil {
		var names []string
		if entries, readErr := os.ReadDir(req.(*v1alpha1.MountRequest).GetTargetPath()); readErr == nil {
			for _, entry := range entries {
				names = append(names, entry.Name())
			}
		}
		r.mu.Lock()
		r.files, r.size, r.targetFiles = len(resp.GetFiles()), proto.Size(resp), names
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) last() (files, size int, targetFiles []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files, r.size, r.targetFiles
}

func runCase(bin string, c testCase, logs *syncBuffer) (err error) {
	dir, err := os.MkdirTemp("", "driverclient-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{dir: dir, store: filepath.Join(dir, "store.yaml"), logs: logs}
	if err := writeFileAtomic(e.store, storeYAML("v2")); err != nil {
		return err
	}
	volume := filepath.Join(dir, "providers")
	args := append([]string{
		"--provider-volume=" + volume,
		"--metrics-addr=",
		"--store", "local", "--local-store", e.store,
	}, c.flags...)
	var providerLog syncBuffer
	e.proc = exec.Command(bin, args...)
	e.proc.Stdout = &providerLog
	e.proc.Stderr = &providerLog
	if err := e.proc.Start(); err != nil {
		return fmt.Errorf("starting the provider: %w", err)
	}
	e.exited = make(chan error, 1)
	go func() { e.exited <- e.proc.Wait() }()
	defer func() {
		if stopErr := e.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if err != nil || *verbose {
			fmt.Printf("---- provider log (%s)\n%s----\n", c.name, providerLog.String())
		}
	}()

	socket := filepath.Join(volume, "aws.sock")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, statErr := os.Stat(socket); statErr == nil {
			break
		}
		select {
		case exitErr := <-e.exited:
			e.exited <- exitErr
			return fmt.Errorf("the provider exited before serving: %v", exitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no socket at %s after 20s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// As the driver's main.go builds it (the providers directory, the receive limit),
	// plus our observing interceptor.
	e.builder = secretsstore.NewPluginClientBuilder([]string{volume},
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxCallRecvMsgSize)),
		grpc.WithChainUnaryInterceptor(e.seen.intercept))
	defer e.builder.Cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.client, err = e.builder.Get(ctx, "aws")
	if err != nil {
		return fmt.Errorf("Get(aws): %w", err)
	}
	return c.run(e)
}

// stop sends SIGTERM (the provider's graceful shutdown) and waits for a clean exit.
func (e *env) stop() error {
	if e.proc == nil || e.proc.Process == nil {
		return nil
	}
	select {
	case err := <-e.exited:
		e.exited <- err
		return fmt.Errorf("the provider exited on its own: %v", err)
	default:
	}
	_ = e.proc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.exited:
		e.exited <- err
		e.proc = nil
		if err != nil {
			return fmt.Errorf("the provider did not exit cleanly on SIGTERM: %v", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = e.proc.Process.Kill()
		<-e.exited
		e.proc = nil
		return errors.New("the provider did not exit within 15s of SIGTERM")
	}
}

// ---------------------------------------------------------------- the store

func storeYAML(mySecretVersion string) string {
	var b strings.Builder
	b.WriteString("secretsmanager:\n")
	b.WriteString("  MySecret:\n")
	b.WriteString("    - {versionId: v1, stages: [AWSPREVIOUS], secretString: '{\"username\":\"olduser\",\"password\":\"old\"}'}\n")
	fmt.Fprintf(&b, "    - {versionId: %s, stages: [AWSCURRENT], secretString: '{\"username\":\"memeuser-%s\",\"password\":\"hunter2\"}'}\n", mySecretVersion, mySecretVersion)
	b.WriteString("  tls/cert:\n")
	b.WriteString("    - {versionId: b1, stages: [AWSCURRENT], secretBinary: aGVsbG8gYmluYXJ5}\n") // "hello binary"
	for i := 0; i < overCount; i++ {
		fmt.Fprintf(&b, "  big/%02d:\n    - {versionId: big-v%d, stages: [AWSCURRENT], secretString: '%s'}\n", i, i, bigValue(i))
	}
	b.WriteString("ssmparameter:\n")
	b.WriteString("  /app/host:\n")
	b.WriteString("    - {version: 1, labels: [stable], value: db-old.internal}\n")
	b.WriteString("    - {version: 3, value: db.internal}\n")
	return b.String()
}

func bigValue(i int) string {
	unit := fmt.Sprintf("value-%02d-0123456789abcdefghijklmnopqrstuvwxyz.", i)
	return strings.Repeat(unit, bigValueBytes/len(unit)+1)[:bigValueBytes]
}

const objects = `
- objectName: MySecret
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: user, filePermission: "0400"}
- objectName: tls/cert
  objectType: secretsmanager
  objectAlias: tls.crt
  filePermission: "0600"
- objectName: /app/host
  objectType: ssmparameter
- objectName: /app/host
  objectType: ssmparameter
  objectVersionLabel: stable
  objectAlias: host-stable
`

// attributes builds the Mount attributes as the driver's NodePublishVolume does: the
// class's parameters, then the volume context kubelet sends (pod, service account).
func attributes(objects string) string {
	parameters := map[string]string{
		"region":  "us-east-1",
		"objects": objects,
	}
	volumeContext := map[string]string{
		"secretProviderClass":                    "app-secrets",
		"csi.storage.k8s.io/pod.name":            "web-0",
		"csi.storage.k8s.io/pod.namespace":       "shop",
		"csi.storage.k8s.io/pod.uid":             "7d3c1c8e-1111-4222-8333-444455556666",
		"csi.storage.k8s.io/serviceAccount.name": "web",
		"csi.storage.k8s.io/ephemeral":           "false",
	}
	for k, v := range volumeContext {
		parameters[k] = v
	}
	out, err := json.Marshal(parameters)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// The driver marshals the request's (absent) node-publish secrets: a nil map is "null".
func noSecrets() string {
	var secrets map[string]string
	out, _ := json.Marshal(secrets)
	return string(out)
}

func (e *env) mount(ctx context.Context, objects, target string, old map[string]string) (map[string]string, string, error) {
	return secretsstore.MountContent(ctx, e.client, attributes(objects), noSecrets(), target, driverPermission, old)
}

func (e *env) target(name string) (string, error) {
	target := filepath.Join(e.dir, "pods", name, "volumes", "kubernetes.io~csi", "secrets", "mount")
	return target, os.MkdirAll(target, 0o750)
}

// ---------------------------------------------------------------- cases

func versionAndHealthCheck(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runtimeVersion, err := secretsstore.Version(ctx, e.client)
	if err != nil {
		return fmt.Errorf("Version: %w", err)
	}
	if runtimeVersion == "" {
		return errors.New("Version: empty runtime version")
	}
	// HealthCheck calls Version on every client each interval and logs the outcome at
	// klog level 4; the log is the only thing it reports.
	e.logs.Reset()
	hcCtx, hcCancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.builder.HealthCheck(hcCtx, 50*time.Millisecond); close(done) }()
	want := fmt.Sprintf(`"provider healthcheck successful" provider="aws" runtimeVersion=%q`, runtimeVersion)
	err = waitFor(5*time.Second, func() bool { return strings.Contains(e.logs.String(), want) })
	hcCancel()
	<-done
	if err != nil {
		return fmt.Errorf("HealthCheck never logged %s; klog output:\n%s", want, e.logs.String())
	}
	return nil
}

type wantFile struct {
	contents string
	mode     os.FileMode
}

func providerWrites(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := e.target("provider-writes")
	if err != nil {
		return err
	}
	versions, code, err := e.mount(ctx, objects, target, nil)
	if err != nil {
		return fmt.Errorf("MountContent: code %q: %w", code, err)
	}
	if code != "" {
		return fmt.Errorf("MountContent: error code %q on success", code)
	}
	if err := checkVersions(versions, map[string]string{
		"MySecret": "v2", "user": "v2", "tls.crt": "b1", "_app_host": "3", "host-stable": "1",
	}); err != nil {
		return err
	}
	want := map[string]wantFile{
		"MySecret":    {`{"username":"memeuser-v2","password":"hunter2"}`, 0o644},
		"user":        {"memeuser-v2", 0o400},
		"tls.crt":     {"hello binary", 0o600},
		"_app_host":   {"db.internal", 0o644},
		"host-stable": {"db-old.internal", 0o644},
	}
	if err := checkFiles(target, want); err != nil {
		return err
	}
	// The provider wrote them: the response had no files (so MountContent wrote
	// nothing) and they were in place when it arrived.
	if files, _, before := e.seen.last(); files != 0 || len(before) == 0 {
		return fmt.Errorf("provider writes: the response had %d files; the target held %v when it arrived", files, before)
	}

	// Rotation: the driver's reconciler calls MountContent again with the versions it
	// has; a new AWSCURRENT version in the store must come back, and the file follow.
	if err := writeFileAtomic(e.store, storeYAML("v3")); err != nil {
		return err
	}
	var rotated map[string]string
	err = waitFor(10*time.Second, func() bool {
		rotated, code, err = e.mount(ctx, objects, target, versions)
		return err == nil && rotated["MySecret"] == "v3"
	})
	if err != nil {
		return fmt.Errorf("rotation: versions %v, code %q, error %v", rotated, code, err)
	}
	if err := checkVersions(rotated, map[string]string{
		"MySecret": "v3", "user": "v3", "tls.crt": "b1", "_app_host": "3", "host-stable": "1",
	}); err != nil {
		return fmt.Errorf("rotation: %w", err)
	}
	want["MySecret"] = wantFile{`{"username":"memeuser-v3","password":"hunter2"}`, 0o644}
	want["user"] = wantFile{"memeuser-v3", 0o400}
	if err := checkFiles(target, want); err != nil {
		return fmt.Errorf("rotation: %w", err)
	}
	return nil
}

func driverWrites(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := e.target("driver-writes")
	if err != nil {
		return err
	}
	versions, code, err := e.mount(ctx, objects, target, nil)
	if err != nil {
		return fmt.Errorf("MountContent: code %q: %w", code, err)
	}
	if err := checkVersions(versions, map[string]string{
		"MySecret": "v2", "user": "v2", "tls.crt": "b1", "_app_host": "3", "host-stable": "1",
	}); err != nil {
		return err
	}
	if err := checkFiles(target, map[string]wantFile{
		"MySecret":    {`{"username":"memeuser-v2","password":"hunter2"}`, 0o644},
		"user":        {"memeuser-v2", 0o400},
		"tls.crt":     {"hello binary", 0o600},
		"_app_host":   {"db.internal", 0o644},
		"host-stable": {"db-old.internal", 0o644},
	}); err != nil {
		return err
	}
	return checkDriverWrote(e, target, 5, []string{"MySecret", "user", "tls.crt", "_app_host", "host-stable"})
}

func failureMessages(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := e.target("failures")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name, objects string
		grpcCode      codes.Code
		contains      []string
	}{
		{"missing secret", "- {objectName: NoSuchSecret, objectType: secretsmanager}", codes.NotFound,
			[]string{"NoSuchSecret", "not found in the local store"}},
		{"invalid class (unknown objectType)", "- {objectName: MySecret, objectType: vault}", codes.InvalidArgument,
			[]string{"vault"}},
		{"invalid class (objects is not YAML)", "- objectName: [unclosed", codes.InvalidArgument,
			[]string{"objects"}},
	} {
		versions, code, err := e.mount(ctx, f.objects, target, nil)
		if err == nil {
			return fmt.Errorf("%s: MountContent succeeded with versions %v", f.name, versions)
		}
		// A gRPC status: the driver reports GRPCProviderError and keeps the message.
		if code != internalerrors.GRPCProviderError {
			return fmt.Errorf("%s: code %q, want %q", f.name, code, internalerrors.GRPCProviderError)
		}
		if got := status.Code(err); got != f.grpcCode {
			return fmt.Errorf("%s: gRPC code %s, want %s (%v)", f.name, got, f.grpcCode, err)
		}
		for _, s := range f.contains {
			if !strings.Contains(err.Error(), s) {
				return fmt.Errorf("%s: the driver's error %q lacks %q", f.name, err.Error(), s)
			}
		}
	}
	return nil
}

func errorCodes(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := e.target("error-codes")
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, objects, code string }{
		{"missing secret", "- {objectName: NoSuchSecret, objectType: secretsmanager}", "SecretNotFound"},
		{"invalid class", "- {objectName: MySecret, objectType: vault}", "InvalidSecretProviderClass"},
	} {
		versions, code, err := e.mount(ctx, f.objects, target, nil)
		if err == nil {
			return fmt.Errorf("%s: MountContent succeeded with versions %v", f.name, versions)
		}
		if code != f.code {
			return fmt.Errorf("%s: code %q, want our %q (error %v)", f.name, code, f.code, err)
		}
		if want := "mount request failed with provider error code " + f.code; err.Error() != want {
			return fmt.Errorf("%s: error %q, want %q", f.name, err.Error(), want)
		}
	}
	// A success still returns versions and no code.
	versions, code, err := e.mount(ctx, objects, target, nil)
	if err != nil || code != "" || versions["MySecret"] != "v2" {
		return fmt.Errorf("success with --error-codes: versions %v, code %q, error %v", versions, code, err)
	}
	return nil
}

func bigObjects(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "- {objectName: big/%02d, objectType: secretsmanager, objectAlias: big-%02d}\n", i, i)
	}
	return b.String()
}

func largeResponse(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target, err := e.target("large")
	if err != nil {
		return err
	}
	versions, code, err := e.mount(ctx, bigObjects(bigCount), target, nil)
	if err != nil {
		return fmt.Errorf("MountContent of %d x %d bytes: code %q: %w", bigCount, bigValueBytes, code, err)
	}
	want := map[string]string{}
	files := map[string]wantFile{}
	names := []string{}
	total := 0
	for i := 0; i < bigCount; i++ {
		name := fmt.Sprintf("big-%02d", i)
		want[name] = fmt.Sprintf("big-v%d", i)
		files[name] = wantFile{bigValue(i), 0o644}
		names = append(names, name)
		total += bigValueBytes
	}
	if total < 3*1024*1024+512*1024 {
		return fmt.Errorf("the case is too small: %d bytes", total)
	}
	if err := checkVersions(versions, want); err != nil {
		return err
	}
	if err := checkFiles(target, files); err != nil {
		return err
	}
	_, size, _ := e.seen.last()
	if size < total || size > maxCallRecvMsgSize {
		return fmt.Errorf("the MountResponse was %d bytes, for %d bytes of contents", size, total)
	}
	fmt.Printf("     (%d files, MountResponse of %d bytes, the driver's limit is %d)\n", bigCount, size, maxCallRecvMsgSize)
	return checkDriverWrote(e, target, bigCount, names)
}

func overLimit(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target, err := e.target("over-limit")
	if err != nil {
		return err
	}
	versions, code, err := e.mount(ctx, bigObjects(overCount), target, nil)
	if err == nil {
		return fmt.Errorf("MountContent of %d x %d bytes succeeded: %v", overCount, bigValueBytes, versions)
	}
	// Our own refusal (OutOfRange with max_response_bytes), not gRPC's
	// "received message larger than max" on the driver's side.
	if code != internalerrors.GRPCProviderError || status.Code(err) != codes.OutOfRange ||
		!strings.Contains(err.Error(), "max_response_bytes") || strings.Contains(err.Error(), "larger than max") {
		return fmt.Errorf("code %q, gRPC code %s, error %v", code, status.Code(err), err)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 0 {
		return fmt.Errorf("files were written: %v", entries)
	}
	return nil
}

// ---------------------------------------------------------------- checks

func checkVersions(got, want map[string]string) error {
	if len(got) != len(want) {
		return fmt.Errorf("versions %v, want %v", sortedMap(got), sortedMap(want))
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("versions %v, want %v", sortedMap(got), sortedMap(want))
		}
	}
	return nil
}

func sortedMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// checkFiles compares the visible files of target (following symlinks, skipping the
// driver's ..-prefixed bookkeeping) with want: names, contents and permission bits.
func checkFiles(target string, want map[string]wantFile) error {
	entries, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, entry := range entries {
		name := entry.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		seen[name] = true
		w, ok := want[name]
		if !ok {
			return fmt.Errorf("unexpected file %s in the target", name)
		}
		path := filepath.Join(target, name)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.Mode().Perm() != w.mode {
			return fmt.Errorf("%s: mode %04o, want %04o", name, info.Mode().Perm(), w.mode)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, []byte(w.contents)) {
			return fmt.Errorf("%s: contents %q, want %q", name, abbreviate(data), abbreviate([]byte(w.contents)))
		}
	}
	for name := range want {
		if !seen[name] {
			return fmt.Errorf("missing file %s in the target", name)
		}
	}
	return nil
}

// checkDriverWrote: the response carried the files, the target was empty when it
// arrived (the provider wrote nothing), and the files are the driver's atomic writer's
// layout (..data -> ..<timestamp>, one symlink per top-level file).
func checkDriverWrote(e *env, target string, wantFiles int, names []string) error {
	if files, _, before := e.seen.last(); files != wantFiles || len(before) != 0 {
		return fmt.Errorf("driver writes: the response had %d files (want %d); the target held %v when it arrived", files, wantFiles, before)
	}
	data, err := os.Readlink(filepath.Join(target, "..data"))
	if err != nil {
		return fmt.Errorf("no ..data link of the driver's atomic writer: %w", err)
	}
	for _, name := range names {
		link, err := os.Readlink(filepath.Join(target, name))
		if err != nil {
			return fmt.Errorf("%s is not the driver writer's symlink: %w", name, err)
		}
		if link != filepath.Join("..data", name) {
			return fmt.Errorf("%s links to %s, want ..data/%s (..data -> %s)", name, link, name, data)
		}
	}
	return nil
}

func abbreviate(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%s... (%d bytes)", b[:80], len(b))
	}
	return string(b)
}

// ---------------------------------------------------------------- helpers

func waitFor(limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for {
		if ok() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFileAtomic(path, contents string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(contents), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// captureKlog sends the driver package's klog output (level 4, where HealthCheck logs)
// to a buffer the cases read.
func captureKlog() *syncBuffer {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "4")
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	logs := &syncBuffer{}
	klog.SetOutput(logs)
	return logs
}
