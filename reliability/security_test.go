//go:build reliability

package reliability_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/reliability/tasks"
	"github.com/taskgen/taskgen/runtime"
)

const (
	tlsRedisPassword = "rel-tls-redis-pw-9f3"
	monitorPassword  = "mon-Pa55-x71"
)

// pki is a CA made by the test and a server certificate it signed for
// 127.0.0.1 and localhost, as PEM files.
type pki struct {
	caFile, certFile, keyFile string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taskgen reliability test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	p := pki{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key")}
	write := func(path, typ string, b []byte) {
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o644))
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	return p
}

// tlsRoundTrip runs 50 rel.record tasks over brokerURL with an in-process
// worker and checks every one ran.
func tlsRoundTrip(t *testing.T, brokerName, brokerURL string) {
	t.Helper()
	s := newSink(t)
	queue := "rel.tls." + randID()
	wapp, _ := newApp(t, "worker", brokerURL)
	inProcessWorker(t, wapp, s, runtime.WorkerOptions{Queues: []string{queue}, Concurrency: 4})
	papp, _ := newApp(t, "producer", brokerURL)
	ctx := ctxT(t, time.Minute)
	var ids []string
	for i := range 50 {
		id := fmt.Sprintf("tls-%d-%s", i, randID())
		_, err := tasks.Record.With(runtime.WithApp(papp), runtime.Queue(queue)).Delay(ctx, id, 0)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	lost, dups := s.waitAll(ids, 30*time.Second)
	report(t, figure{Scenario: "7 TLS round trip (CA made by the test)", Broker: brokerName, Tasks: int64(len(ids)), Lost: int64(len(lost)), Duplicates: int64(dups), Notes: "verified server certificate"})
	require.Empty(t, lost)
}

// untrusted checks that a TLS URL without the test CA is refused (the
// system roots do not know it) and that the error is redacted.
func untrusted(t *testing.T, brokerURL string) {
	t.Helper()
	log, f := logger(t, "untrusted", -4)
	app, err := runtime.New(runtime.Config{Broker: brokerURL, Logger: log, PublishTimeout: 3 * time.Second})
	if err == nil {
		defer app.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = tasks.Record.With(runtime.WithApp(app), runtime.Queue("rel.untrusted")).Delay(ctx, "x", 0)
	}
	require.Error(t, err, "a server whose CA is unknown must be refused")
	fmt.Fprintln(f, "untrusted CA error:", err)
	t.Logf("without the CA: %v", err)
	require.NotContains(t, err.Error(), tlsRedisPassword)
	require.NotContains(t, err.Error(), amqpPassword)
}

func rabbitTLS(t *testing.T, p pki, port int) {
	base := fmt.Sprintf("amqps://taskgen:%s@localhost:%d/taskgen", amqpPassword, port)
	tlsRoundTrip(t, "rabbitmq amqps://", base+"?cacertfile="+p.caFile)
	untrusted(t, base)
}

// startTLSRedis starts a redis-server listening only with TLS, requiring
// tlsRedisPassword (requirepass).
func startTLSRedis(t *testing.T, p pki) int {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err)
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", p.certFile, "--tls-key-file", p.keyFile, "--tls-ca-cert-file", p.caFile, "--tls-auth-clients", "no",
		"--requirepass", tlsRedisPassword, "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(p.caFile)
	pool.AppendCertsFromPEM(ca)
	require.Eventually(t, func() bool {
		c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, 10*time.Second, 50*time.Millisecond, "TLS redis-server did not come up")
	return port
}

// TestSecurity: TLS to Redis, credential redaction in errors, the
// monitor's basic authentication. (Pickle is refused in TestPoison; TLS to
// RabbitMQ runs in TestRabbitMQPrivate; every log line of the suite is
// scanned for passwords by TestMain.)
func TestSecurity(t *testing.T) {
	p := newPKI(t)
	t.Run("redis TLS", func(t *testing.T) {
		port := startTLSRedis(t, p)
		base := fmt.Sprintf("rediss://:%s@localhost:%d/0", tlsRedisPassword, port)
		tlsRoundTrip(t, "redis rediss://", base+"?ssl_ca_certs="+p.caFile)
		untrusted(t, base)
	})
	t.Run("redaction", func(t *testing.T) {
		// Wrong password, unreachable host, malformed option: the error
		// texts never carry the password.
		_, okURL := privateRedis(t)
		cases := map[string]string{
			// "redis wrong password" is TestKnownBugRedisAuthFailureIsNotSilent.
			"redis unreachable":   fmt.Sprintf("redis://u:%s@127.0.0.1:%d/0", redisPassword, freePort(t)),
			"redis bad option":    okURL + "?no_such_option=1",
			"amqp wrong password": strings.Replace(testenv.AMQPURL(t), amqpPassword, amqpPassword+"-wrong", 1),
			"amqp unreachable":    fmt.Sprintf("amqp://taskgen:%s@127.0.0.1:%d/taskgen", amqpPassword, freePort(t)),
			"amqp bad option":     testenv.AMQPURL(t) + "?no_such_option=1",
		}
		log, f := logger(t, "redaction", -4)
		for name, u := range cases {
			app, err := runtime.New(runtime.Config{Broker: u, Logger: log, PublishTimeout: 2 * time.Second})
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				_, err = tasks.Record.With(runtime.WithApp(app), runtime.Queue("rel.redact")).Delay(ctx, "x", 0)
				cancel()
				app.Close()
			}
			require.Error(t, err, name)
			fmt.Fprintf(f, "%s: %v\n", name, err)
			t.Logf("%s: %v", name, err)
			require.NotContains(t, err.Error(), redisPassword, name)
			require.NotContains(t, err.Error(), amqpPassword, name)
		}
		report(t, figure{Scenario: "7 redaction: error texts of bad URLs", Broker: "both", Tasks: int64(len(cases)), Notes: "0 passwords in error texts"})
	})
	t.Run("monitor basic auth", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "taskmon")
		out, err := exec.Command("go", "build", "-o", bin, "../cmd/taskmon").CombinedOutput()
		require.NoError(t, err, "%s", out)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		cmd := exec.Command(bin, "-broker", testenv.AMQPURL(t), "-addr", addr, "-basic-auth", "admin:"+monitorPassword, "-poll", "500ms")
		cmd.Stderr = logFile(t, "taskmon")
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		get := func(path, user, pass string) (int, string) {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		require.Eventually(t, func() bool { c, _ := get("/", "", ""); return c != 0 }, 20*time.Second, 100*time.Millisecond)
		pages := logFile(t, "taskmon-pages")
		checked := 0
		for _, path := range []string{"/", "/tasks", "/broker", "/metrics", "/api/workers", "/api/tasks", "/api/queues/length"} {
			code, _ := get(path, "", "")
			require.Equal(t, http.StatusUnauthorized, code, "GET %s without credentials", path)
			code, _ = get(path, "admin", "wrong")
			require.Equal(t, http.StatusUnauthorized, code, "GET %s with a wrong password", path)
			code, body := get(path, "admin", monitorPassword)
			require.Equal(t, http.StatusOK, code, "GET %s with credentials", path)
			require.NotContains(t, body, amqpPassword, "page %s shows the broker password", path)
			fmt.Fprintf(pages, "%s\n%s\n", path, body) // the credential scan covers the pages too
			checked++
		}
		report(t, figure{Scenario: "7 monitor basic auth", Broker: "rabbitmq", Tasks: int64(checked), Notes: fmt.Sprintf("%d pages: 401 without / wrong password, 200 with; no broker password in pages", checked)})
	})
}
