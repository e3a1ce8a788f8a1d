package notify

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Notification kinds.
const (
	KindStudyMinted     = "study.minted"
	KindRequestReceived = "request.received"
	KindGrantConfirmed  = "grant.confirmed"
	KindGrantRevoked    = "grant.revoked"
	KindBreakGlass      = "break-glass"
)

// Text is what a notification says: the same fixed, PHI-free words in
// the portal and in e-mail.
type Text struct {
	Title string // e-mail subject and portal heading
	Body  string // one or two sentences
}

// Describe returns the words for a notification kind. They never depend
// on the payload, so nothing about a study or a person can leak through
// them.
func Describe(kind string) Text {
	switch kind {
	case KindStudyMinted:
		return Text{"A new imaging study is available",
			"A new imaging study is available in your Medimint portal."}
	case KindRequestReceived:
		return Text{"Someone asked for access to an imaging study",
			"Someone asked for access to one of your imaging studies. Sign in to approve or deny the request."}
	case KindGrantConfirmed:
		return Text{"Access to an imaging study was shared",
			"Access to an imaging study was shared, and the grant is now in force."}
	case KindGrantRevoked:
		return Text{"Access to an imaging study was revoked",
			"A grant of access to an imaging study was revoked."}
	case KindBreakGlass:
		return Text{"Emergency access to one of your imaging studies",
			"A clinician used emergency (break-glass) access to one of your imaging studies. Sign in to see who, when and why."}
	}
	return Text{"News about your imaging records", "There is news about your imaging records."}
}

// message is one e-mail, ready for SMTP DATA.
type message struct {
	id      int64
	created time.Time
	kind    string
	to      string
}

// compose writes the RFC 5322 message: plain ASCII text, CRLF lines.
// portal is the portal's URL; from the sender's address.
func (m message) compose(from *mail.Address, portal string) []byte {
	t := Describe(m.kind)
	domain := "medimint.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from.String())
	h("To", (&mail.Address{Address: m.to}).String())
	h("Subject", "Medimint: "+t.Title)
	h("Date", m.created.UTC().Format(time.RFC1123Z))
	// Stable across retries, so that a duplicate can be recognised.
	h("Message-ID", fmt.Sprintf("<notification.%d.%d@%s>", m.id, m.created.UnixMicro(), domain))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=us-ascii")
	h("Content-Transfer-Encoding", "7bit")
	h("Auto-Submitted", "auto-generated")
	b.WriteString("\r\nHello,\r\n\r\n")
	b.WriteString(t.Body + "\r\n\r\n")
	if portal != "" {
		b.WriteString("Sign in to your portal to see it:\r\n" + strings.TrimRight(portal, "/") + "/notifications\r\n\r\n")
	} else {
		b.WriteString("Sign in to your Medimint portal to see it.\r\n\r\n")
	}
	b.WriteString("For your privacy this e-mail says nothing more.\r\n-- \r\nMedimint\r\n")
	return b.Bytes()
}
