// Command livenessprobe stands in for the CSI livenessprobe sidecar (its module is not
// served by the Go module proxy here) with the flags the driver's chart passes it: GET
// /healthz on --http-endpoint calls the driver's CSI Probe at --csi-address.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the CSI driver's socket")
	timeout := flag.Duration("probe-timeout", time.Second, "how long a probe may take")
	endpoint := flag.String("http-endpoint", "127.0.0.1:9808", "where /healthz is served")
	flag.Int("v", 0, "log verbosity (accepted for livenessprobe's flags)")
	flag.Parse()
	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("csi address %s: %v", *csiAddress, err)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), *timeout)
		defer cancel()
		probe, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{})
		if err != nil || (probe.GetReady() != nil && !probe.GetReady().GetValue()) {
			http.Error(w, "driver not ready", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	log.Printf("serving /healthz on %s", *endpoint)
	log.Fatal(http.ListenAndServe(*endpoint, nil))
}
