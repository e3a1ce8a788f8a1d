// Package notify delivers notifications to account holders: in the
// portal at once, and by e-mail through SMTP.
//
// Notifications are rows of access_notifications (schema
// db/migrations/0201_access.sql and 0402_notify.sql). Package access
// queues break-glass notifications; triggers on the chain watcher's
// tables queue the others in the watcher's own transaction: a new study
// minted to a patient (study.minted), an access request received
// (request.received), a grant confirmed or revoked (grant.confirmed,
// grant.revoked, for the holder and the grantee). A dedupe key keeps a
// watcher rebuild from queueing them again. Every insert is announced on
// Channel as "<account> <kind>" (break-glass: the account alone, by
// package access), which wakes the Notifier and the portal API's event
// streams; the portal lists them at /api/notifications in the words of
// Describe.
//
// The table is an outbox for e-mail: the Notifier leases due rows (FOR
// UPDATE SKIP LOCKED, so any number of processes may run one), sends each
// to the account's user's address, and sets delivered_at; a failed send
// is retried with exponential backoff up to MaxAttempts. A message is
// sent once unless the process dies between the SMTP server's acceptance
// and the commit that follows it; the retry then reuses the same
// Message-ID, so the receiving side can tell the copy.
//
// E-mails carry no PHI and nothing from the notification's payload: only
// a fixed sentence per kind ("A new imaging study is available.") and a
// link to the portal, where the reader signs in to see more. SMTP uses
// STARTTLS whenever the server offers it, and authenticates (PLAIN) only
// over TLS or to a loopback server.
package notify
