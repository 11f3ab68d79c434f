// Command kubeserver is the real Kubernetes control plane of the provider's tests: the
// kube-apiserver of the pinned Kubernetes release and an embedded etcd, in one binary
// built from the Go module proxy (envtest-style, without downloading release binaries).
//
//	kubeserver pki DIR [IP...]    CA, serving certificate for 127.0.0.1 (and each IP), service-account keys, admin token
//	kubeserver etcd DIR CLIENT PEER   etcd with its data in DIR, listening on two loopback URLs
//	kubeserver compact CLIENT     compacts etcd's history up to its current revision
//	kubeserver apiserver FLAGS... kube-apiserver, exactly as its own command parses FLAGS
//
// Each part is its own process so a test can restart the API server over the same etcd.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // the API server's client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // kubernetes_build_info
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: kubeserver pki|etcd|compact|apiserver ...")
	}
	args := os.Args[2:]
	// A test process that dies without cleaning up must not leave a control plane behind.
	if parent := os.Getenv("KUBESERVER_PARENT_PID"); parent != "" {
		pid, err := strconv.Atoi(parent)
		if err != nil {
			fail("KUBESERVER_PARENT_PID=%q: %v", parent, err)
		}
		go exitWithParent(pid)
	}
	switch os.Args[1] {
	case "pki":
		if len(args) < 1 {
			fail("pki: expected DIR [IP...]")
		}
		var extra []net.IP
		for _, arg := range args[1:] {
			ip := net.ParseIP(arg)
			if ip == nil {
				fail("pki: %q is not an IP address", arg)
			}
			extra = append(extra, ip)
		}
		if err := writePKI(args[0], extra); err != nil {
			fail("pki: %v", err)
		}
	case "etcd":
		need(args, 3)
		if err := runEtcd(args[0], args[1], args[2]); err != nil {
			fail("etcd: %v", err)
		}
	case "compact":
		need(args, 1)
		if err := compact(args[0]); err != nil {
			fail("compact: %v", err)
		}
	case "apiserver":
		command := app.NewAPIServerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	default:
		fail("unknown command %q", os.Args[1])
	}
}

// exitWithParent polls rather than using PR_SET_PDEATHSIG, which follows the thread
// that spawned the process (a test's runtime thread), not the test process. The pid is
// given, not read here, so a parent that died before this started is noticed too.
func exitWithParent(parent int) {
	for {
		if os.Getppid() != parent {
			os.Exit(3)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func need(args []string, n int) {
	if len(args) != n {
		fail("expected %d arguments, got %d", n, len(args))
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "kubeserver: "+format+"\n", a...)
	os.Exit(2)
}

// writePKI writes, into dir: ca.crt (trusted by clients), server.crt/server.key (for
// 127.0.0.1, ::1 and localhost), sa.key/sa.pub (service-account token signing), and
// tokens.csv with admin.token (a random bearer token in system:masters).
func writePKI(dir string, extraIPs []net.IP) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubeserver test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	server := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes.default.svc"},
		IPAddresses:  append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, extraIPs...),
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, server, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	adminToken := hex.EncodeToString(token)
	files := []struct {
		name string
		data func() ([]byte, error)
	}{
		{"ca.crt", func() ([]byte, error) { return pemOf("CERTIFICATE", caDER), nil }},
		{"server.crt", func() ([]byte, error) { return pemOf("CERTIFICATE", serverDER), nil }},
		{"server.key", func() ([]byte, error) { return pkcs8(serverKey) }},
		{"sa.key", func() ([]byte, error) { return pkcs8(saKey) }},
		{"sa.pub", func() ([]byte, error) {
			der, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
			return pemOf("PUBLIC KEY", der), err
		}},
		{"tokens.csv", func() ([]byte, error) {
			return []byte(adminToken + ",admin,admin-uid,system:masters\n"), nil
		}},
		{"admin.token", func() ([]byte, error) { return []byte(adminToken), nil }},
	}
	for _, f := range files {
		data, err := f.data()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemOf(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func pkcs8(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	return pemOf("PRIVATE KEY", der), err
}

// runEtcd serves etcd until SIGTERM or SIGINT.
func runEtcd(dir, client, peer string) error {
	clientURL, err := url.Parse(client)
	if err != nil {
		return err
	}
	peerURL, err := url.Parse(peer)
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	// The tests compact on purpose; nothing else should.
	cfg.AutoCompactionRetention = "0"
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer server.Close()
	select {
	case <-server.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		return fmt.Errorf("not ready within 60s")
	}
	fmt.Println("etcd ready")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		return nil
	case err := <-server.Err():
		return err
	}
}

// compact discards etcd's history before its current revision, so a watch that resumes
// from an older resourceVersion is answered 410 Gone.
func compact(endpoint string) error {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, err := client.Status(ctx, endpoint)
	if err != nil {
		return err
	}
	revision := status.Header.Revision
	if _, err := client.Compact(ctx, revision, clientv3.WithCompactPhysical()); err != nil {
		return err
	}
	fmt.Println(revision)
	return nil
}
