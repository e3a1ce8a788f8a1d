package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medimint/medimint/dicom"
)

// rawRQ is an A-ASSOCIATE-RQ proposing Verification and CT storage.
func rawRQ() []byte {
	return (&AssociatePDU{Type: PDUAssociateRQ, CallingAE: "RAW", CalledAE: "MEDIMINT", UserInfo: UserInfo{MaxLength: 16384}, Contexts: []PresentationContext{
		{ID: 1, AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
		{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}},
	}}).Encode(nil)
}

func pdata(pcid byte, command, last bool, data []byte) []byte {
	return append(AppendPDataHeader(nil, PDV{ContextID: pcid, Command: command, Last: last}, len(data)), data...)
}

func echoRQ() []byte {
	return pdata(1, true, true, (&command{Field: cEchoRQ, MessageID: 1, AffectedSOPClass: dicom.VerificationSOPClass}).encode())
}

// pduTypes reads PDUs from conn until it closes and returns their types;
// the deadline only guards the test against hanging.
func pduTypes(t *testing.T, conn net.Conn) []PDUType {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var types []PDUType
	for {
		typ, _, err := ReadPDU(conn, nil, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection not closed by the server; PDUs so far %v", types)
			}
			return types
		}
		types = append(types, typ)
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func associateRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn := dialRaw(t, addr)
	conn.Write(rawRQ())
	typ, _, err := ReadPDU(conn, nil, 0)
	if err != nil || typ != PDUAssociateAC {
		t.Fatalf("association: %s %v", typ, err)
	}
	return conn
}

// echoWorks checks the server still serves a fresh association.
func echoWorks(t *testing.T, addr string) {
	t.Helper()
	ctx := context.Background()
	c, err := Associate(ctx, addr, ClientConfig{CallingAE: "CHECK", CalledAE: "MEDIMINT", Contexts: echoContexts})
	if err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
	if err := c.Echo(ctx); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
}

func badInputServer(t *testing.T) (*testServer, string) {
	dir := t.TempDir()
	store, _ := NewDirStore(dir)
	store.Log = testLogger(t)
	return startServer(t, Config{
		AETitle:      "MEDIMINT",
		Store:        store,
		MaxPDULength: 16384,
		ARTIMTimeout: 300 * time.Millisecond,
		IdleTimeout:  500 * time.Millisecond,
		ReadTimeout:  300 * time.Millisecond,
	}), dir
}

func TestWrongPDUs(t *testing.T) {
	checkNoLeak(t)
	ts, _ := badInputServer(t)
	hdr := func(typ PDUType, n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{byte(typ), 0}, n) }
	cases := []struct {
		name      string
		associate bool
		send      []byte
		want      []PDUType // what the server answers before closing
	}{
		// Sta2: anything but A-ASSOCIATE-RQ is AA-1 (A-ABORT).
		{"Sta2/P-DATA", false, echoRQ(), []PDUType{PDUAbort}},
		{"Sta2/A-RELEASE-RQ", false, encodeShort(PDUReleaseRQ, 0, 0, 0), []PDUType{PDUAbort}},
		{"Sta2/A-ASSOCIATE-AC", false, (&AssociatePDU{Type: PDUAssociateAC}).Encode(nil), []PDUType{PDUAbort}},
		{"Sta2/unknown type", false, []byte{0x09, 0, 0, 0, 0, 0}, []PDUType{PDUAbort}},
		{"Sta2/4 GiB A-ASSOCIATE-RQ", false, hdr(PDUAssociateRQ, 0xFFFFFFFF), []PDUType{PDUAbort}},
		{"Sta2/malformed A-ASSOCIATE-RQ", false, append(hdr(PDUAssociateRQ, 10), make([]byte, 10)...), []PDUType{PDUAbort}},
		{"Sta2/A-ABORT", false, (&AbortPDU{}).Encode(), nil},
		// Sta6: association PDUs are AA-8.
		{"Sta6/A-ASSOCIATE-RQ", true, rawRQ(), []PDUType{PDUAbort}},
		{"Sta6/A-ASSOCIATE-AC", true, (&AssociatePDU{Type: PDUAssociateAC}).Encode(nil), []PDUType{PDUAbort}},
		{"Sta6/A-ASSOCIATE-RJ", true, (&RejectPDU{1, 1, 1}).Encode(), []PDUType{PDUAbort}},
		{"Sta6/A-RELEASE-RP", true, encodeShort(PDUReleaseRP, 0, 0, 0), []PDUType{PDUAbort}},
		{"Sta6/unknown type", true, []byte{0x10, 0, 0, 0, 0, 4, 1, 2, 3, 4}, []PDUType{PDUAbort}},
		{"Sta6/oversized P-DATA", true, hdr(PDUPData, 16385), []PDUType{PDUAbort}},
		{"Sta6/4 GiB P-DATA", true, hdr(PDUPData, 0xFFFFFFFF), []PDUType{PDUAbort}},
		{"Sta6/PDV on unaccepted context", true, pdata(5, true, true, []byte{0, 0}), []PDUType{PDUAbort}},
		{"Sta6/PDV length overrun", true, []byte{4, 0, 0, 0, 0, 8, 0, 0, 0, 9, 1, 3, 0, 0}, []PDUType{PDUAbort}},
		{"Sta6/garbage command", true, pdata(1, true, true, []byte{1, 2, 3}), []PDUType{PDUAbort}},
		{"Sta6/data before command", true, pdata(1, false, true, []byte{1, 2}), []PDUType{PDUAbort}},
		{"Sta6/release", true, encodeShort(PDUReleaseRQ, 0, 0, 0), []PDUType{PDUReleaseRP}},
		{"Sta6/A-ABORT", true, (&AbortPDU{}).Encode(), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var conn net.Conn
			if c.associate {
				conn = associateRaw(t, ts.addr)
			} else {
				conn = dialRaw(t, ts.addr)
			}
			conn.Write(c.send)
			got := pduTypes(t, conn)
			if !equalTypes(got, c.want) {
				t.Errorf("server answered %v, want %v", got, c.want)
			}
			echoWorks(t, ts.addr)
		})
	}
}

func equalTypes(a, b []PDUType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSilentAndSlowPeers: a connection that never sends its A-ASSOCIATE-RQ
// is closed on ARTIM; an idle association is aborted; a peer trickling a
// PDU byte by byte is cut off.
func TestSilentAndSlowPeers(t *testing.T) {
	checkNoLeak(t)
	ts, _ := badInputServer(t)
	t.Run("HalfOpenBeforeAssociation", func(t *testing.T) {
		conn := dialRaw(t, ts.addr)
		if got := pduTypes(t, conn); len(got) != 0 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("IdleAssociation", func(t *testing.T) {
		conn := associateRaw(t, ts.addr)
		if got := pduTypes(t, conn); !equalTypes(got, []PDUType{PDUAbort}) {
			t.Errorf("got %v, want an A-ABORT", got)
		}
	})
	trickle := func(t *testing.T, conn net.Conn, b []byte) {
		t.Helper()
		closed := make(chan []PDUType)
		go func() { closed <- pduTypes(t, conn) }()
		for i, c := range b {
			select {
			case <-closed:
				if i == len(b) {
					t.Error("the whole PDU went through")
				}
				return
			default:
			}
			conn.Write([]byte{c})
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("the server let %d bytes trickle in", len(b))
		<-closed
	}
	t.Run("TrickleAssociateRQ", func(t *testing.T) {
		trickle(t, dialRaw(t, ts.addr), rawRQ())
	})
	t.Run("TricklePData", func(t *testing.T) {
		conn := associateRaw(t, ts.addr)
		trickle(t, conn, pdata(3, false, true, bytes.Repeat([]byte{1}, 400)))
	})
	echoWorks(t, ts.addr)
}

// TestAbruptCloseMidStore: the peer vanishes in the middle of a data set;
// nothing is stored, no temporary file remains, the server carries on.
func TestAbruptCloseMidStore(t *testing.T) {
	checkNoLeak(t)
	ts, dir := badInputServer(t)
	for _, how := range []string{"close", "abort"} {
		t.Run(how, func(t *testing.T) {
			conn := associateRaw(t, ts.addr)
			cmd := &command{Field: cStoreRQ, MessageID: 1, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.4", DataSet: true}
			conn.Write(pdata(3, true, true, cmd.encode()))
			conn.Write(pdata(3, false, false, bytes.Repeat([]byte{0}, 1000)))
			conn.Write(pdata(3, false, false, bytes.Repeat([]byte{0}, 1000)))
			if how == "abort" {
				conn.Write((&AbortPDU{}).Encode())
			} else {
				conn.Close()
			}
			pduTypes(t, conn)
			echoWorks(t, ts.addr)
			// The server may close the connection before the store
			// handler has seen the broken stream and removed its
			// temporary file, so give it a moment.
			var ents []os.DirEntry
			for i := 0; i < 250; i++ {
				if ents, _ = os.ReadDir(dir); len(ents) == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, e := range ents {
				t.Errorf("left behind: %s", e.Name())
			}
		})
	}
}

// TestGracefulShutdown: cancelling Serve's context lets an in-flight
// C-STORE finish (and be acknowledged), aborts idle associations, and
// Serve returns.
func TestGracefulShutdown(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	store, _ := NewDirStore(dir)
	store.Log = testLogger(t)
	started := make(chan struct{})
	var once sync.Once
	hook := storeFunc(func(ctx context.Context, req StoreRequest, data io.Reader) Status {
		once.Do(func() { close(started) })
		return store.Store(ctx, req, data)
	})
	ts := startServer(t, Config{AETitle: "MEDIMINT", Store: hook, ShutdownTimeout: 20 * time.Second})
	ctx := context.Background()
	ctContexts := []ProposedContext{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}

	idle, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "IDLE", CalledAE: "MEDIMINT", Contexts: echoContexts})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "BUSY", CalledAE: "MEDIMINT", Contexts: ctContexts, MaxPDULength: 16384})
	if err != nil {
		t.Fatal(err)
	}
	ds := &dicom.Dataset{}
	ds.Set(dicom.NewStrings(dicom.TagSOPClassUID, dicom.UI, "1.2.840.10008.5.1.4.1.1.2"))
	ds.Set(dicom.NewStrings(dicom.TagSOPInstanceUID, dicom.UI, "1.2.3.99"))
	ds.Set(dicom.Element{Tag: dicom.NewTag(0x0009, 0x0010), VR: dicom.LO, Value: []byte("TEST")})
	ds.Set(dicom.Element{Tag: dicom.NewTag(0x0009, 0x1000), VR: dicom.OB, Value: make([]byte, 200000)})
	body, err := encodeDataset(ds, explicitLE)
	if err != nil {
		t.Fatal(err)
	}
	// The data set stalls half way until the server has begun shutting
	// down.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(body[:100000])
		<-started
		// Wait until Serve has stopped accepting.
		for {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				break
			}
			c.Close()
			time.Sleep(10 * time.Millisecond)
		}
		pw.Write(body[100000:])
		pw.Close()
	}()
	result := make(chan error, 1)
	go func() {
		_, err := busy.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.99", dicom.ExplicitVRLittleEndian, pr)
		result <- err
	}()
	<-started // the store is in flight
	ts.cancel()
	if err := <-result; err != nil {
		t.Fatalf("in-flight store: %v", err)
	}
	if got := datasetBytes(t, store.Path("1.2.3.99")); !bytes.Equal(got, body) {
		t.Error("stored data set differs")
	}
	if err := busy.Echo(ctx); err == nil {
		t.Error("association still usable after shutdown")
	}
	if err := idle.Echo(ctx); err == nil {
		t.Error("idle association still usable after shutdown")
	}
	busy.Abort()
	idle.Abort()
	if err := <-ts.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	ts.done <- nil
}

// FuzzPDU feeds arbitrary bytes to the PDU decoders and to a server-side
// association over net.Pipe: nothing may panic, hang or leak.
func FuzzPDU(f *testing.F) {
	rq := rawRQ()
	echo := echoRQ()
	store := pdata(3, true, true, (&command{Field: cStoreRQ, MessageID: 2, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3", DataSet: true}).encode())
	data := pdata(3, false, true, []byte{8, 0, 0x16, 0, 'U', 'I', 2, 0, '1', 0})
	release := encodeShort(PDUReleaseRQ, 0, 0, 0)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(rq, echo, release))
	f.Add(cat(rq, store, data, release))
	f.Add(cat(rq, store, release))
	f.Add(cat(rq, pdata(1, true, false, echo[12:20]), pdata(1, true, true, echo[20:]), release))
	f.Add(cat(rq, rq))
	f.Add(cat(rq, (&AbortPDU{}).Encode()))
	f.Add(cat(rq, []byte{4, 0, 0xFF, 0xFF, 0xFF, 0xFF}))
	f.Add(sampleRQ().Encode(nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0})

	dir := f.TempDir()
	ds, _ := NewDirStore(dir)
	ds.Log = testLogger(f)
	srv, err := NewServer(Config{
		AETitle: "MEDIMINT", Store: ds, Find: NewDirIndex(dir), Logger: testLogger(f),
		ARTIMTimeout: 50 * time.Millisecond, IdleTimeout: 100 * time.Millisecond, ReadTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The decoders alone.
		if typ, body, err := ReadPDU(bytes.NewReader(b), nil, 16384); err == nil {
			switch typ {
			case PDUAssociateRQ, PDUAssociateAC:
				if a, err := DecodeAssociate(typ, body); err == nil {
					if _, err := DecodeAssociate(typ, a.Encode(nil)[pduHeaderLen:]); err != nil && !strings.Contains(err.Error(), "invalid") {
						t.Errorf("re-encoding: %v", err)
					}
				}
			case PDUPData:
				ForPDVs(body, func(p PDV) error { decodeCommand(p.Data); return nil })
			}
		}
		// The association.
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.serveConn(server)
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(time.Second))
		client.Write(b)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("association did not end")
		}
	})
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".incoming") {
			f.Errorf("temporary file left: %s", filepath.Join(dir, e.Name()))
		}
	}
}

type storeFunc func(ctx context.Context, req StoreRequest, data io.Reader) Status

func (f storeFunc) Store(ctx context.Context, req StoreRequest, data io.Reader) Status {
	return f(ctx, req, data)
}

// TestHandlerPanic: a panicking handler costs its association only.
func TestHandlerPanic(t *testing.T) {
	checkNoLeak(t)
	ts := startServer(t, Config{AETitle: "MEDIMINT", Store: storeFunc(func(context.Context, StoreRequest, io.Reader) Status {
		panic("handler bug")
	})})
	ctx := context.Background()
	c, err := Associate(ctx, ts.addr, ClientConfig{CallingAE: "GO", CalledAE: "MEDIMINT", Contexts: []ProposedContext{
		{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", dicom.ExplicitVRLittleEndian, strings.NewReader("\x08\x00\x16\x00UI\x02\x001\x00")); err == nil {
		t.Error("store succeeded")
	}
	c.Abort()
	echoWorks(t, ts.addr)
}
