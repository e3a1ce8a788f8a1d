package dimse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
)

var echoContexts = []ProposedContext{{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}}

func TestAssociationRejection(t *testing.T) {
	checkNoLeak(t)
	ts := startServer(t, Config{
		AETitle:         "MEDIMINT",
		MaxAssociations: 1,
		AllowedCallers:  map[string]string{"MODALITY": "org-1", "OTHER": "org-2"},
	})
	ctx := context.Background()
	cases := []struct {
		name             string
		calling, called  string
		result, src, rsn uint8
		echoscuSays      string
	}{
		{"CalledAE", "MODALITY", "SOMEONE", RejectPermanent, RejectSourceServiceUser, RejectCalledAENotRecognized, "Called AE Title Not Recognized"},
		{"CallingAE", "STRANGER", "MEDIMINT", RejectPermanent, RejectSourceServiceUser, RejectCallingAENotRecognized, "Calling AE Title Not Recognized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: c.calling, CalledAE: c.called, Contexts: echoContexts})
			var rj *RejectPDU
			if !errors.As(err, &rj) {
				t.Fatalf("Associate: %v, want an A-ASSOCIATE-RJ", err)
			}
			if rj.Result != c.result || rj.Source != c.src || rj.Reason != c.rsn {
				t.Errorf("rejected with %d/%d/%d, want %d/%d/%d", rj.Result, rj.Source, rj.Reason, c.result, c.src, c.rsn)
			}
			if _, err := exec_LookPath("echoscu"); err == nil {
				out, err := run(t, "echoscu", "-aet", c.calling, "-aec", c.called, "127.0.0.1", ts.port)
				if err == nil || !strings.Contains(out, c.echoscuSays) {
					t.Errorf("echoscu: %v, output lacks %q:\n%s", err, c.echoscuSays, out)
				}
			}
		})
	}
	t.Run("TooManyAssociations", func(t *testing.T) {
		first, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "MODALITY", CalledAE: "MEDIMINT", Contexts: echoContexts})
		if err != nil {
			t.Fatal(err)
		}
		defer first.Release(ctx)
		_, err = Associate(ctx, ts.addr, ClientConfig{CallingAE: "OTHER", CalledAE: "MEDIMINT", Contexts: echoContexts})
		var rj *RejectPDU
		if !errors.As(err, &rj) || rj.Result != RejectTransient || rj.Source != RejectSourceServiceProviderPres || rj.Reason != RejectLocalLimitExceeded {
			t.Fatalf("second association: %v, want transient local-limit-exceeded", err)
		}
		if _, err := exec_LookPath("echoscu"); err == nil {
			out, err := run(t, "echoscu", "-aet", "OTHER", "-aec", "MEDIMINT", "127.0.0.1", ts.port)
			if err == nil || !strings.Contains(out, "Local Limit Exceeded") {
				t.Errorf("echoscu: %v, output lacks the reason:\n%s", err, out)
			}
		}
		// The first association still works, and once released the slot
		// is free again.
		if err := first.Echo(ctx); err != nil {
			t.Fatalf("echo on the first association: %v", err)
		}
		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
		var again *Client
		for i := 0; ; i++ { // the server frees the slot after the release completes
			again, err = Associate(ctx, ts.addr, ClientConfig{CallingAE: "OTHER", CalledAE: "MEDIMINT", Contexts: echoContexts})
			if err == nil || i == 100 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("association after release: %v", err)
		}
		again.Release(ctx)
	})
}

// TestPresentationContextNegotiation checks the AC's results: unknown
// abstract syntax (3), unknown transfer syntax (4), and the preference
// order.
func TestPresentationContextNegotiation(t *testing.T) {
	checkNoLeak(t)
	store, _ := NewDirStore(t.TempDir())
	ts := startServer(t, Config{Store: store})
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rq := &AssociatePDU{Type: PDUAssociateRQ, CallingAE: "A", CalledAE: "B", UserInfo: UserInfo{MaxLength: 16384}, Contexts: []PresentationContext{
		{ID: 1, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.JPEGLosslessSV1, dicom.ExplicitVRLittleEndian}},
		{ID: 5, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.3.4.5.6"}},
		{ID: 7, AbstractSyntax: "1.2.3.4.5.6.7", TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
		{ID: 9, AbstractSyntax: dicom.StudyRootQueryRetrieveFind, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}, // no Find handler
		{ID: 11, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.9999.1", TransferSyntaxes: []string{dicom.ExplicitVRBigEndian, dicom.ImplicitVRLittleEndian}},
	}}
	if _, err := conn.Write(rq.Encode(nil)); err != nil {
		t.Fatal(err)
	}
	typ, body, err := ReadPDU(conn, nil, 0)
	if err != nil || typ != PDUAssociateAC {
		t.Fatalf("got %s, %v", typ, err)
	}
	ac, err := DecodeAssociate(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint8]struct {
		result uint8
		ts     string
	}{
		1:  {ResultAcceptance, dicom.ExplicitVRLittleEndian},
		3:  {ResultAcceptance, dicom.JPEGLosslessSV1},
		5:  {ResultTransferSyntaxesNotSupported, ""},
		7:  {ResultAbstractSyntaxNotSupported, ""},
		9:  {ResultAbstractSyntaxNotSupported, ""},
		11: {ResultAcceptance, dicom.ImplicitVRLittleEndian},
	}
	if len(ac.Contexts) != len(want) {
		t.Fatalf("%d contexts in the AC, want %d", len(ac.Contexts), len(want))
	}
	for _, pc := range ac.Contexts {
		w := want[pc.ID]
		if pc.Result != w.result || (w.ts != "" && pc.TransferSyntaxes[0] != w.ts) {
			t.Errorf("context %d: result %d %v, want %d %s", pc.ID, pc.Result, pc.TransferSyntaxes, w.result, w.ts)
		}
	}
	if ac.UserInfo.MaxLength != DefaultMaxPDULength || ac.UserInfo.ImplementationClassUID != dicom.ImplementationClassUID {
		t.Errorf("user info %+v", ac.UserInfo)
	}
	conn.Write((&AbortPDU{}).Encode())
}

func exec_LookPath(name string) (string, error) {
	if os.Getenv("MEDIMINT_REQUIRE_TOOLS") != "" {
		return name, nil // run it, and fail loudly if it is missing
	}
	return lookPath(name)
}

// testPKI writes a CA, a server and a client certificate as PEM files.
type testPKI struct {
	dir                           string
	caFile, serverCert, serverKey string
	clientCert, clientKey         string
	serverTLS, clientTLS          *tls.Config
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Medimint test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string, pair tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(key)
		certFile = write(cn+".pem", "CERTIFICATE", der)
		keyFile = write(cn+".key", "EC PRIVATE KEY", kd)
		pair, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	var sp, cp tls.Certificate
	p.serverCert, p.serverKey, sp = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey, cp = leaf(3, "modality", x509.ExtKeyUsageClientAuth)
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{sp}, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	p.clientTLS = &tls.Config{Certificates: []tls.Certificate{cp}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return p
}

func TestTLS(t *testing.T) {
	checkNoLeak(t)
	pki := newTestPKI(t)
	store, _ := NewDirStore(t.TempDir())
	ts := startServer(t, Config{AETitle: "MEDIMINT", TLS: pki.serverTLS, Store: store})
	ctx := context.Background()

	t.Run("GoClient", func(t *testing.T) {
		c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "MODALITY", CalledAE: "MEDIMINT", Contexts: echoContexts, TLS: pki.clientTLS})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Echo(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("GoClientWithoutCertificate", func(t *testing.T) {
		noCert := pki.clientTLS.Clone()
		noCert.Certificates = nil
		c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "MODALITY", CalledAE: "MEDIMINT", Contexts: echoContexts, TLS: noCert})
		if err == nil {
			err = c.Echo(ctx) // TLS 1.3 reports the missing certificate after the handshake
			c.Abort()
		}
		if err == nil {
			t.Fatal("association without a client certificate succeeded")
		}
	})
	t.Run("echoscu", func(t *testing.T) {
		requireTool(t, "echoscu")
		out := mustRun(t, "echoscu", "-v", "-aet", "MODALITY", "-aec", "MEDIMINT", "+tls", pki.clientKey, pki.clientCert, "+cf", pki.caFile, "127.0.0.1", ts.port)
		if !strings.Contains(out, "Received Echo Response (Success)") {
			t.Fatalf("no echo success:\n%s", out)
		}
	})
	t.Run("storescu", func(t *testing.T) {
		requireTool(t, "storescu", "dcmconv")
		in := filepath.Join(t.TempDir(), "ct.dcm")
		mustRun(t, "dcmconv", "+te", "-p", sample(t, "CT_small.dcm"), in)
		mustRun(t, "storescu", "-aet", "MODALITY", "-aec", "MEDIMINT", "+tls", pki.clientKey, pki.clientCert, "+cf", pki.caFile, "127.0.0.1", ts.port, in)
		got := store.Path(metaOf(t, in).Meta.String(dicom.TagMediaStorageSOPInstanceUID))
		if string(datasetBytes(t, got)) != string(datasetBytes(t, in)) {
			t.Error("stored data set differs")
		}
	})
	t.Run("echoscuAnonymous", func(t *testing.T) {
		requireTool(t, "echoscu")
		out, err := run(t, "echoscu", "-aet", "MODALITY", "-aec", "MEDIMINT", "+tla", "+cf", pki.caFile, "127.0.0.1", ts.port)
		if err == nil {
			t.Fatalf("echoscu without a client certificate succeeded:\n%s", out)
		}
	})
}

// TestClientStore sends instances with our SCU: the data set is stored
// byte for byte; one whose UIDs differ from the command's is refused with
// A900 and not stored.
func TestClientStore(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	store, _ := NewDirStore(dir)
	store.Log = testLogger(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Store: store})
	ctx := context.Background()
	const ct = "1.2.840.10008.5.1.4.1.1.2"
	for _, tsUID := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.DeflatedExplicitVRLittleEndian} {
		t.Run(tsUID, func(t *testing.T) {
			tsx, _ := dicom.LookupTransferSyntax(tsUID)
			c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "GO", CalledAE: "MEDIMINT", MaxPDULength: 4096,
				Contexts: []ProposedContext{{AbstractSyntax: ct, TransferSyntaxes: []string{tsUID}}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release(ctx)
			ds := &dicom.Dataset{}
			ds.Set(dicom.NewStrings(dicom.TagSOPClassUID, dicom.UI, ct))
			ds.Set(dicom.NewStrings(dicom.TagSOPInstanceUID, dicom.UI, "1.2.3.4.5"))
			ds.Set(dicom.NewStrings(dicom.NewTag(0x0010, 0x0010), dicom.PN, "Test^Patient"))
			ds.Set(dicom.Element{Tag: dicom.TagPixelData, VR: dicom.OW, Value: make([]byte, 50000)})
			body, err := encodeDataset(ds, tsx)
			if err != nil {
				t.Fatal(err)
			}
			st, err := c.Store(ctx, ct, "1.2.3.4.5", tsUID, byteReader(body))
			if err != nil || st.Code != StatusSuccess {
				t.Fatalf("Store: %v %v", st, err)
			}
			if got := datasetBytes(t, store.Path("1.2.3.4.5")); string(got) != string(body) {
				t.Error("stored data set differs")
			}
			if f := metaOf(t, store.Path("1.2.3.4.5")); f.Meta.String(dicom.NewTag(2, 0x16)) != "GO" || f.TransferSyntax.UID != tsUID {
				t.Errorf("File Meta: source AE %q, transfer syntax %s", f.Meta.String(dicom.NewTag(2, 0x16)), f.TransferSyntax.UID)
			}
			st, err = c.Store(ctx, ct, "1.2.3.4.6", tsUID, byteReader(body))
			if st.Code != StatusDataSetDoesNotMatchSOPClass || err == nil {
				t.Errorf("mismatching store: %v %v, want A900", st, err)
			}
			if _, err := os.Stat(store.Path("1.2.3.4.6")); err == nil {
				t.Error("mismatching instance stored")
			}
			if err := c.Echo(ctx); err == nil {
				t.Error("echo without a Verification context succeeded")
			}
		})
	}
}
