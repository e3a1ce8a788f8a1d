package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medimint/medimint/db/dbtest"
	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dimse"
	"github.com/medimint/medimint/gateway"
	"github.com/medimint/medimint/mint"
	"github.com/medimint/medimint/mint/blobstore"
	"github.com/medimint/medimint/mint/envelope"
	"github.com/medimint/medimint/mint/pinning"
)

// The statement's generated tables sit between these markers; -update
// rewrites them from the code's registries.
var update = flag.Bool("update", false, "rewrite the generated tables of CONFORMANCE.md")

const statementFile = "../CONFORMANCE.md"

func beginMarker(name string) string { return "<!-- BEGIN GENERATED " + name + " -->" }
func endMarker(name string) string {
	return "<!-- END GENERATED " + name + " (go test ./conformance -run Statement -update) -->"
}

// replaceSection swaps the body between a section's markers.
func replaceSection(doc, name, body string) (string, error) {
	b, e := beginMarker(name), endMarker(name)
	i := strings.Index(doc, b)
	j := strings.Index(doc, e)
	if i < 0 || j < i {
		return "", fmt.Errorf("CONFORMANCE.md: markers of section %q missing", name)
	}
	return doc[:i+len(b)] + "\n" + body + doc[j:], nil
}

// section returns the body between a section's markers.
func section(doc, name string) string {
	b, e := beginMarker(name), endMarker(name)
	i := strings.Index(doc, b)
	j := strings.Index(doc, e)
	if i < 0 || j < i {
		return ""
	}
	return doc[i+len(b)+1 : j]
}

func storageTable() string {
	var sb strings.Builder
	sb.WriteString("| SOP Class | SOP Class UID | Role |\n|---|---|---|\n")
	for _, e := range dicom.StorageSOPClasses() {
		name := e.Name
		if e.Retired {
			name += " (retired)"
		}
		fmt.Fprintf(&sb, "| %s | %s | SCP |\n", name, e.UID)
	}
	return sb.String()
}

func transferSyntaxTable() string {
	var sb strings.Builder
	sb.WriteString("| Transfer Syntax | UID | C-STORE / STOW-RS (stored as received) | C-FIND / C-MOVE / C-GET identifiers |\n|---|---|---|---|\n")
	for _, ts := range dicom.TransferSyntaxes() {
		name := ts.Name
		if ts.Retired {
			name += " (retired)"
		}
		ident := "yes"
		if ts.Encapsulated {
			ident = "no"
		}
		fmt.Fprintf(&sb, "| %s | %s | yes | %s |\n", name, ts.UID, ident)
	}
	return sb.String()
}

// standardCharacterSets are the Defined Terms of Specific Character Set
// (PS3.3 C.12.1.1.2, Tables C.12-2 to C.12-5).
var standardCharacterSets = []string{
	"ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127", "ISO_IR 126",
	"ISO_IR 138", "ISO_IR 148", "ISO_IR 203", "ISO_IR 13", "ISO_IR 166",
	"ISO 2022 IR 6", "ISO 2022 IR 100", "ISO 2022 IR 101", "ISO 2022 IR 109", "ISO 2022 IR 110",
	"ISO 2022 IR 144", "ISO 2022 IR 127", "ISO 2022 IR 126", "ISO 2022 IR 138", "ISO 2022 IR 148",
	"ISO 2022 IR 203", "ISO 2022 IR 13", "ISO 2022 IR 166", "ISO 2022 IR 87", "ISO 2022 IR 159",
	"ISO 2022 IR 149", "ISO 2022 IR 58",
	"ISO_IR 192", "GB18030", "GBK",
}

func characterSetTable() string {
	var sb strings.Builder
	sb.WriteString("| Specific Character Set (0008,0005) | Supported |\n|---|---|\n")
	sb.WriteString("| (none: default repertoire, ISO-IR 6) | yes |\n")
	for _, term := range standardCharacterSets {
		terms := []string{term}
		if strings.HasPrefix(term, "ISO 2022") && term != "ISO 2022 IR 6" {
			// Multi-byte sets are used after a first, single-byte term.
			terms = []string{"ISO 2022 IR 6", term}
		}
		ok := "yes"
		if _, err := dicom.ParseCharacterSet(terms); err != nil {
			ok = "no"
		}
		fmt.Fprintf(&sb, "| %s | %s |\n", term, ok)
	}
	return sb.String()
}

// dicomwebTable lists the resources of the gateway's capabilities
// document, served by a real gateway on loopback.
func dicomwebTable(t *testing.T) string {
	t.Helper()
	caps := capabilities(t)
	var sb strings.Builder
	sb.WriteString("| Service | Method | Resource (relative to the base URL) |\n|---|---|---|\n")
	for _, svc := range caps.Services {
		for _, r := range svc.Resources {
			fmt.Fprintf(&sb, "| %s | %s | `%s` |\n", svc.Service, r.Method, r.Path)
		}
	}
	sb.WriteString("\n| Media types | |\n|---|---|\n")
	row := func(name string, v []string) {
		fmt.Fprintf(&sb, "| %s | %s |\n", name, "`"+strings.Join(v, "`<br>`")+"`")
	}
	row("STOW-RS request", caps.MediaType.StoreRequest)
	row("STOW-RS response", caps.MediaType.StoreResponse)
	row("WADO-RS retrieve", caps.MediaType.Retrieve)
	row("WADO-RS metadata", caps.MediaType.Metadata)
	row("WADO-RS rendered", caps.MediaType.Rendered)
	row("QIDO-RS", caps.MediaType.Search)
	row("Errors", []string{caps.MediaType.Errors})
	row("WADO-RS transcodes between", caps.TransferSyntaxes.Transcoded)
	return sb.String()
}

// capabilities starts a gateway on a real pipeline (fresh database, local
// blob store and pins) and fetches its capabilities document.
func capabilities(t *testing.T) gateway.Capabilities {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := dbtest.New(t)
	dir := t.TempDir()
	blobs, err := blobstore.NewFS(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := envelope.OpenLocalKEK(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	pins, err := pinning.NewLocal(filepath.Join(dir, "ipfs"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := mint.New(mint.Config{Pool: pool, Blobs: blobs, Keys: kek, Pinner: pins, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Config{Version: "statement"}, gateway.Deps{DB: pool, Pipeline: p, Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- gw.Serve(sctx, ln) }()
	defer func() { stop(); <-done }()
	resp, err := http.Get("http://" + ln.Addr().String() + gateway.DefaultBasePath + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("capabilities: HTTP %d: %s", resp.StatusCode, b)
	}
	var caps gateway.Capabilities
	if err := json.NewDecoder(resp.Body).Decode(&caps); err != nil {
		t.Fatal(err)
	}
	return caps
}

// TestStatementTables keeps CONFORMANCE.md's generated tables equal to
// the code's registries.
func TestStatementTables(t *testing.T) {
	raw, err := os.ReadFile(statementFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	sections := []struct {
		name string
		gen  func() string
	}{
		{"storage-sop-classes", storageTable},
		{"transfer-syntaxes", transferSyntaxTable},
		{"character-sets", characterSetTable},
		{"dicomweb-resources", func() string { return dicomwebTable(t) }},
	}
	want := doc
	for _, s := range sections {
		if want, err = replaceSection(want, s.name, s.gen()); err != nil {
			t.Fatal(err)
		}
	}
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(statementFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("CONFORMANCE.md updated")
		return
	}
	for _, s := range sections {
		if got, w := section(doc, s.name), section(want, s.name); got != w {
			t.Errorf("CONFORMANCE.md section %s differs from the code (go test ./conformance -run Statement -update):\n%s", s.name, lineDiff(got, w))
		}
	}
}

// lineDiff lists lines only in one of a and b.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out bytes.Buffer
	for _, l := range al {
		if !slices.Contains(bl, l) {
			fmt.Fprintf(&out, "- %s\n", l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			fmt.Fprintf(&out, "+ %s\n", l)
		}
	}
	return out.String()
}

// TestStatementNegotiation checks the statement's claims against a real
// DIMSE server's association negotiation: every Storage SOP class and
// transfer syntax in the tables is accepted, the Query/Retrieve classes
// are, and a SOP class the statement does not list is refused.
func TestStatementNegotiation(t *testing.T) {
	dir := t.TempDir()
	store, err := dimse.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := dimse.NewServer(dimse.Config{AETitle: "MEDIMINT", Store: store, Find: dimse.NewDirIndex(dir), Retrieve: dimse.NewDirIndex(dir), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	// negotiate proposes contexts (at most 127 an association: odd IDs)
	// and returns which were accepted.
	negotiate := func(pcs []dimse.ProposedContext) []bool {
		t.Helper()
		var out []bool
		for len(pcs) > 0 {
			n := min(len(pcs), 120)
			c, err := dimse.Associate(ctx, ln.Addr().String(), dimse.ClientConfig{CallingAE: "STATEMENT", CalledAE: "MEDIMINT", Contexts: pcs[:n], Logger: log})
			if err != nil {
				t.Fatalf("associate: %v", err)
			}
			for _, pc := range pcs[:n] {
				out = append(out, c.Accepted(pc.AbstractSyntax, pc.TransferSyntaxes[0]))
			}
			c.Release(ctx)
			pcs = pcs[n:]
		}
		return out
	}

	var pcs []dimse.ProposedContext
	classes := dicom.StorageSOPClasses()
	for _, e := range classes {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: e.UID, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}})
	}
	for i, ok := range negotiate(pcs) {
		if !ok {
			t.Errorf("statement lists %s (%s) but the SCP refuses it", classes[i].Name, classes[i].UID)
		}
	}

	pcs = pcs[:0]
	syntaxes := dicom.TransferSyntaxes()
	for _, ts := range syntaxes {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{ts.UID}})
	}
	for i, ok := range negotiate(pcs) {
		if !ok {
			t.Errorf("statement lists transfer syntax %s for storage but the SCP refuses it", syntaxes[i].UID)
		}
	}

	qr := []string{dicom.VerificationSOPClass, dicom.PatientRootQueryRetrieveFind, dicom.StudyRootQueryRetrieveFind,
		dicom.PatientRootQueryRetrieveMove, dicom.StudyRootQueryRetrieveMove, dicom.PatientRootQueryRetrieveGet, dicom.StudyRootQueryRetrieveGet}
	pcs = pcs[:0]
	for _, uid := range qr {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: uid, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}})
	}
	for i, ok := range negotiate(pcs) {
		if !ok {
			t.Errorf("statement lists %s as SCP but the SCP refuses it", qr[i])
		}
	}

	// Not in the statement: Modality Worklist FIND, Storage Commitment.
	refused := []string{"1.2.840.10008.5.1.4.31", "1.2.840.10008.1.20.1"}
	pcs = pcs[:0]
	for _, uid := range refused {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: uid, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}})
	}
	for i, ok := range negotiate(pcs) {
		if ok {
			t.Errorf("%s is not in the statement but the SCP accepts it", refused[i])
		}
	}
}
