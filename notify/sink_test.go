package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is one message the sink accepted.
type received struct {
	from, to string
	data     string
	tls      bool
	auth     string // the AUTH PLAIN response, decoded
}

// sink is a minimal SMTP server (RFC 5321) on loopback: enough of EHLO,
// STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954), MAIL, RCPT, DATA, RSET and
// QUIT to receive what the Notifier sends.
type sink struct {
	ln       net.Listener
	tls      *tls.Config // non-nil: offer STARTTLS
	mu       sync.Mutex
	refuse   int // MAIL FROM commands still to answer 451
	got      []received
	arrivals chan received
	wg       sync.WaitGroup
}

func startSink(t *testing.T, tlsCfg *tls.Config, refuse int) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, tls: tlsCfg, refuse: refuse, arrivals: make(chan received, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *sink) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a stuck client must not hang the test's cleanup
	tp := textproto.NewConn(c)
	reply := func(lines ...string) bool {
		for _, l := range lines {
			if err := tp.PrintfLine("%s", l); err != nil {
				return false
			}
		}
		return true
	}
	var cur received
	reply("220 sink.test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"250-sink.test", "250-8BITMIME"}
			if s.tls != nil && !cur.tls {
				lines = append(lines, "250-STARTTLS")
			}
			if cur.tls {
				lines = append(lines, "250-AUTH PLAIN")
			}
			reply(append(lines, "250 OK")...)
		case "HELO", "NOOP":
			reply("250 OK")
		case "STARTTLS":
			if s.tls == nil || cur.tls {
				reply("502 not now")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			tp = textproto.NewConn(tc)
			cur = received{tls: true}
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, err := base64.StdEncoding.DecodeString(resp)
			if !strings.EqualFold(mech, "PLAIN") || err != nil {
				reply("504 unsupported")
				continue
			}
			cur.auth = string(b)
			reply("235 2.7.0 authenticated")
		case "MAIL":
			s.mu.Lock()
			refuse := s.refuse > 0
			if refuse {
				s.refuse--
			}
			s.mu.Unlock()
			if refuse {
				reply("451 4.3.0 try again later")
				continue
			}
			cur.from, _, _ = strings.Cut(strings.TrimPrefix(arg, "FROM:"), " ") // without parameters (BODY=8BITMIME)
			reply("250 OK")
		case "RCPT":
			cur.to = strings.TrimPrefix(arg, "TO:")
			reply("250 OK")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			cur.data = string(b)
			s.mu.Lock()
			s.got = append(s.got, cur)
			s.mu.Unlock()
			s.arrivals <- cur
			cur = received{tls: cur.tls, auth: cur.auth}
			reply("250 2.0.0 queued")
		case "RSET":
			cur = received{tls: cur.tls, auth: cur.auth}
			reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("500 unknown command")
		}
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and a client
// configuration that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: roots}
}
