package subscriptions

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/nats-io/nats.go"
)

// The websocket channel (R4): a client opens a websocket to
// [base]/websocket and sends "bind <subscription id>"; the server answers
// "bound <id>" (or "error <id> <reason>") and from then on sends
// "ping <id>" for each notification of that subscription, which the client
// follows with a search. A connection may bind several subscriptions.
// Pings reach the connections bound at the time, on whichever replica they
// are: the lane of the subscription publishes each one on the core NATS
// subject fhir.ws.<id>, which every bound connection's replica subscribes
// to. Pings are not queued for a client that is not connected: it catches
// up with a search.
const (
	ChannelWebSocket  = "websocket"
	wsSubjectPrefix   = "fhir.ws."
	wsMaxMessage      = 4 << 10
	wsPingEvery       = 30 * time.Second
	wsWriteTimeout    = 10 * time.Second
	wsMaxBindings     = 100
	wsOutgoingBacklog = 256
)

func wsSubject(id string) string { return wsSubjectPrefix + id }

// pingWebSocket is the delivery of a notification on the websocket channel.
func (h *Hub) pingWebSocket(s *sub, event string) error {
	m := &nats.Msg{Subject: wsSubject(s.ID), Data: []byte("ping " + s.ID), Header: nats.Header{HeaderEvent: []string{event}}}
	if err := h.Bus.Conn().PublishMsg(m); err != nil {
		return &deliveryError{err: err}
	}
	return nil
}

// WebSocket is the handler of [base]/websocket. It runs behind the API's
// authentication: with authorization on (ReadCheck set), a client may bind
// only a Subscription its token may read.
func (h *Hub) WebSocket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Bearer tokens, not cookies, authenticate: any origin may connect.
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return // Accept has answered
		}
		conn.SetReadLimit(wsMaxMessage)
		access := smart.AccessFrom(r.Context())
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		defer cancel()
		ws := &wsConn{h: h, conn: conn, access: access, out: make(chan string, wsOutgoingBacklog), subs: map[string]*nats.Subscription{}}
		go ws.writer(ctx, cancel)
		ws.reader(ctx)
		cancel()
		ws.unbindAll()
		_ = conn.Close(websocket.StatusNormalClosure, "")
	})
}

type wsConn struct {
	h      *Hub
	conn   *websocket.Conn
	access *smart.Access
	out    chan string
	mu     sync.Mutex
	subs   map[string]*nats.Subscription
}

// send queues a text message; a client too slow to take its messages is
// disconnected rather than held in memory.
func (ws *wsConn) send(msg string) bool {
	select {
	case ws.out <- msg:
		return true
	default:
		_ = ws.conn.Close(websocket.StatusPolicyViolation, "too many unread messages")
		return false
	}
}

func (ws *wsConn) writer(ctx context.Context, cancel context.CancelFunc) {
	defer cancel()
	tick := time.NewTicker(wsPingEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-ws.out:
			wctx, c := context.WithTimeout(ctx, wsWriteTimeout)
			err := ws.conn.Write(wctx, websocket.MessageText, []byte(msg))
			c()
			if err != nil {
				return
			}
		case <-tick.C:
			pctx, c := context.WithTimeout(ctx, wsWriteTimeout)
			err := ws.conn.Ping(pctx)
			c()
			if err != nil {
				return
			}
		}
	}
}

func (ws *wsConn) reader(ctx context.Context) {
	for {
		typ, data, err := ws.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		verb, id, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		id = strings.TrimSpace(id)
		switch verb {
		case "bind":
			if reason := ws.bind(ctx, id); reason != "" {
				ws.send("error " + id + " " + reason)
			} else {
				ws.send("bound " + id)
			}
		case "unbind":
			ws.unbind(id)
			ws.send("unbound " + id)
		default:
			ws.send("error " + id + " unknown command " + verb + ": send bind <subscription id>")
		}
	}
}

// bind checks that id is a websocket Subscription the client may read and
// forwards its pings; it returns why not otherwise.
func (ws *wsConn) bind(ctx context.Context, id string) string {
	h := ws.h
	if id == "" {
		return "bind needs a subscription id"
	}
	ws.mu.Lock()
	_, bound := ws.subs[id]
	n := len(ws.subs)
	ws.mu.Unlock()
	if bound {
		return ""
	}
	if n >= wsMaxBindings {
		return "too many subscriptions bound on one connection"
	}
	r, err := h.Service.Store.Read(ctx, "Subscription", id)
	if err != nil || r.Deleted() {
		if err == nil || errors.Is(err, fhir.ErrNotFound) {
			return "no such Subscription"
		}
		return "the Subscription cannot be read now"
	}
	if h.ReadCheck != nil {
		ok, err := h.ReadCheck(ws.access)(ctx, r)
		if err != nil {
			return "the Subscription cannot be read now"
		}
		if !ok {
			return "no such Subscription" // as a read would answer
		}
	}
	s, err := decodeSpec(r)
	if err != nil || s.Channel != ChannelWebSocket {
		return "not a websocket Subscription"
	}
	sub, err := h.Bus.Conn().Subscribe(wsSubject(id), func(m *nats.Msg) { ws.send(string(m.Data)) })
	if err != nil {
		return "the hub cannot forward notifications now"
	}
	ws.mu.Lock()
	ws.subs[id] = sub
	ws.mu.Unlock()
	return ""
}

func (ws *wsConn) unbind(id string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if s := ws.subs[id]; s != nil {
		_ = s.Unsubscribe()
		delete(ws.subs, id)
	}
}

func (ws *wsConn) unbindAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for id, s := range ws.subs {
		_ = s.Unsubscribe()
		delete(ws.subs, id)
	}
}
