// Package mamsync keeps a local message store level with the server's
// message archive (XEP-0313), every message exactly once and in archive
// order.
//
// # Reconciling after a login
//
// The login says where the archive stands: the XEP-0386 v0.3.0 <bound>
// carries <latest-id>; otherwise Metadata asks the archive (XEP-0313
// metadata), and a server without metadata is paged until it says the
// result set is complete. Reconcile compares that id with the store's
// cursor: equal means no query at all. Otherwise it pages the archive with
// RSM from the cursor (form field after-id), as many messages per page as
// the server allows, each page stored in one transaction together with the
// new cursor, until it reaches the target. Every message is keyed by the
// archive's stanza-id (the MAM result id, or a XEP-0359 stanza-id whose by=
// is the account), never by message/@id.
//
// # Live messages
//
// HandleRaw sees every incoming top-level message, as it came off the wire
// and before the session decodes it. While a query runs, archived live
// messages (direct, or carbons from the account itself) are held; after the
// paging they are merged: those the archive already gave are dropped, the
// rest appended in arrival order, so a message after latest-id is never
// fetched from the archive and never lost. Outside a query a live message
// extends the store directly (StoreLive, on the owner's goroutine, never on
// the session's reading one), unless this session has sent a message since
// the cursor was last confirmed (the archive holds sent messages, the
// stream does not echo them): then it is held and CatchUp asks the archive,
// which answers in order. If the session drops before that, the next
// Reconcile fetches them: a held message is never stored out of order.
//
// # An expired cursor
//
// When the server no longer knows the cursor (item-not-found: the archive
// expired past it), Reconcile fetches the newest page, records a Gap
// between the old cursor and that page, and continues from there. The gap
// is reported and kept; nothing is lost silently and nothing loops.
//
// # Bounds
//
// A hostile or broken server cannot make mamsync hold unbounded data or page
// forever. A page holds at most the page size asked for (RSM <max/>): more
// results are ErrPageOverflow, and nothing of that page is stored. Paging
// that does not advance is ErrNoProgress: an empty page that is not the
// last, a page whose RSM <last/> is not its last result, a page that ends
// where the paging was before (found in constant memory, however long the
// loop). A reconcile stops after Config.MaxPages pages (ErrTooManyPages).
// What was stored before any of these stays stored. Live messages held
// during a query are bounded too. Server input is parsed with limits on
// ids, bodies and stanza sizes, and never panics (see the fuzz tests).
//
// # Throughput
//
// A catch-up is streamed: memory does not grow with the gap. MAM results
// are taken off the wire before the session decodes them (HandleRaw) and
// read in one pass by a tokenizer of the plain XML servers send; the next
// MAM query is sent as soon as a page is
// full, before its <fin/>; and storing runs beside the paging, each
// transaction taking what was fetched while the previous one ran (see
// BenchmarkCatchUp100k in the client package).
package mamsync
