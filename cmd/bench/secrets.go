package main

import (
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/playbookstudio/gateway/internal/integration"
)

// benchSecrets: what opening one profile's secrets costs the egress on
// every call: unwrap the data key under the master key, then decrypt and
// decode the secrets (AES-256-GCM twice and a small JSON), as the median
// of many single opens.
func benchSecrets(iterations int, out *output) error {
	progress("secrets: unwrap + open of one profile's secrets, %d times", iterations)
	master := make([]byte, integration.KeySize)
	if _, err := rand.Read(master); err != nil {
		return err
	}
	keys, err := integration.NewKeyring(master)
	if err != nil {
		return err
	}
	want := integration.Secrets{SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "FwoGZXIvYXdzEBYaDbench-session-token"}
	sealed, err := keys.Seal("default", "00000000-0000-4000-8000-000000000001", integration.AWSSigV4, want)
	if err != nil {
		return err
	}
	times := make([]time.Duration, iterations)
	for i := range times {
		start := time.Now()
		got, err := keys.Open("default", "00000000-0000-4000-8000-000000000001", integration.AWSSigV4, sealed)
		times[i] = time.Since(start)
		if err != nil || got != want {
			return fmt.Errorf("secrets: open failed: %v", err)
		}
	}
	slices.Sort(times)
	out.line("secrets_open_us", float64(times[len(times)/2].Nanoseconds())/1e3, "us")
	return nil
}
