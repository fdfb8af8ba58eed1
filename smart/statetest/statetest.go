// Package statetest is the conformance suite of the smart.Store contract.
// Every backend's tests call Run with a function that makes an empty store;
// a behaviour is defined here once and checked on every backend.
package statetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/smart"
)

// Run checks that the stores newStore makes keep the smart.Store contract.
// newStore must return an empty, open store, closed by the test's cleanup.
func Run(t *testing.T, newStore func(t *testing.T) smart.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	t.Run("Clients", func(t *testing.T) {
		st := newStore(t)
		c := smart.Client{ID: "app", Name: "App", Type: smart.ClientPublic, RedirectURIs: []string{"https://app/cb"}, Created: now}
		if err := st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateClient(ctx, c); !errors.Is(err, smart.ErrExists) {
			t.Errorf("second create: got %v, want ErrExists", err)
		}
		got, err := st.Client(ctx, "app")
		if err != nil || got.Name != "App" || got.RedirectURIs[0] != "https://app/cb" || !got.Created.Equal(now) {
			t.Errorf("got %+v, %v", got, err)
		}
		if _, err := st.Client(ctx, "nope"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("unknown client: got %v, want ErrNotFound", err)
		}
		_ = st.CreateClient(ctx, smart.Client{ID: "b", Type: smart.ClientSymmetric})
		if all, err := st.Clients(ctx); err != nil || len(all) != 2 || all[0].ID != "app" || all[1].ID != "b" {
			t.Errorf("list: got %+v, %v", all, err)
		}
		if err := st.DeleteClient(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteClient(ctx, "app"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("second delete: got %v, want ErrNotFound", err)
		}
	})
	t.Run("Users", func(t *testing.T) {
		st := newStore(t)
		if err := st.CreateUser(ctx, smart.User{Username: "ann", FHIRUser: "Practitioner/1"}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, smart.User{Username: "ann"}); !errors.Is(err, smart.ErrExists) {
			t.Errorf("got %v, want ErrExists", err)
		}
		if u, err := st.User(ctx, "ann"); err != nil || u.FHIRUser != "Practitioner/1" {
			t.Errorf("got %+v, %v", u, err)
		}
		if us, err := st.Users(ctx); err != nil || len(us) != 1 {
			t.Errorf("got %+v, %v", us, err)
		}
		if err := st.DeleteUser(ctx, "ann"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.User(ctx, "ann"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("Keys", func(t *testing.T) {
		st := newStore(t)
		k := smart.SigningKey{ID: "k1", JWK: []byte(`{"kty":"EC"}`), Created: now}
		if err := st.PutKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		k.Retired = now.Add(time.Minute)
		if err := st.PutKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		ks, err := st.Keys(ctx)
		if err != nil || len(ks) != 1 || !ks[0].Retired.Equal(k.Retired) {
			t.Errorf("got %+v, %v; want one retired key", ks, err)
		}
		if err := st.DeleteKey(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CodeSingleUse", func(t *testing.T) {
		st := newStore(t)
		if err := st.PutCode(ctx, smart.Code{ID: "c1", ClientID: "app", Expires: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if c, err := st.TakeCode(ctx, "c1"); err != nil || c.ClientID != "app" {
			t.Fatalf("first take: got %+v, %v", c, err)
		}
		if _, err := st.TakeCode(ctx, "c1"); !errors.Is(err, smart.ErrUsed) {
			t.Errorf("second take: got %v, want ErrUsed", err)
		}
		_ = st.PutCode(ctx, smart.Code{ID: "old", Expires: time.Now().Add(-time.Second)})
		if _, err := st.TakeCode(ctx, "old"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("expired code: got %v, want ErrNotFound", err)
		}
	})
	t.Run("Marks", func(t *testing.T) {
		st := newStore(t)
		if err := st.Mark(ctx, smart.MarkAssertion, "app|j1", time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := st.Mark(ctx, smart.MarkAssertion, "app|j1", time.Now().Add(time.Minute)); !errors.Is(err, smart.ErrUsed) {
			t.Errorf("second mark: got %v, want ErrUsed", err)
		}
		if ok, err := st.Marked(ctx, smart.MarkAssertion, "app|j1"); err != nil || !ok {
			t.Errorf("Marked: got %v, %v", ok, err)
		}
		if ok, _ := st.Marked(ctx, smart.MarkRevoked, "app|j1"); ok {
			t.Error("a mark of another kind is set")
		}
		// An expired mark may be set again.
		_ = st.Mark(ctx, smart.MarkRevoked, "x", time.Now().Add(-time.Second))
		if ok, _ := st.Marked(ctx, smart.MarkRevoked, "x"); ok {
			t.Error("an expired mark reads as set")
		}
		if err := st.Mark(ctx, smart.MarkRevoked, "x", time.Now().Add(time.Minute)); err != nil {
			t.Errorf("re-setting an expired mark: %v", err)
		}
	})
	t.Run("MarkRace", func(t *testing.T) {
		st := newStore(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := st.Mark(ctx, smart.MarkRefresh, "r1", time.Now().Add(time.Minute))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, smart.ErrUsed):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("got %d winners, want 1", wins)
		}
	})
	t.Run("SessionsAndRequests", func(t *testing.T) {
		st := newStore(t)
		s := smart.Session{ID: "s1", CSRF: "x", Expires: time.Now().Add(time.Hour)}
		_ = st.PutSession(ctx, s)
		s.Username = "ann"
		if err := st.PutSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Session(ctx, "s1"); err != nil || got.Username != "ann" {
			t.Errorf("got %+v, %v", got, err)
		}
		_ = st.DeleteSession(ctx, "s1")
		if _, err := st.Session(ctx, "s1"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
		r := smart.AuthRequest{ID: "r1", Scope: "openid", Expires: time.Now().Add(time.Minute)}
		_ = st.PutRequest(ctx, r)
		r.Expires = time.Now().Add(-time.Second)
		_ = st.PutRequest(ctx, r)
		if _, err := st.Request(ctx, "r1"); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("expired request: got %v, want ErrNotFound", err)
		}
		_ = st.PutLaunch(ctx, smart.Launch{ID: "l1", Context: smart.Context{Patient: "p1"}, Expires: time.Now().Add(time.Minute)})
		if l, err := st.Launch(ctx, "l1"); err != nil || l.Context.Patient != "p1" {
			t.Errorf("got %+v, %v", l, err)
		}
		_ = st.PutRefresh(ctx, smart.Refresh{ID: "h", Family: "f", Expires: time.Now().Add(time.Minute)})
		if rf, err := st.Refresh(ctx, "h"); err != nil || rf.Family != "f" {
			t.Errorf("got %+v, %v", rf, err)
		}
	})
	t.Run("Prune", func(t *testing.T) {
		st := newStore(t)
		_ = st.PutRefresh(ctx, smart.Refresh{ID: "gone", Expires: time.Now().Add(-time.Second)})
		_ = st.PutRefresh(ctx, smart.Refresh{ID: "kept", Expires: time.Now().Add(time.Hour)})
		_ = st.Mark(ctx, smart.MarkBootstrap, "for-ever", time.Time{})
		if err := st.Prune(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Refresh(ctx, "kept"); err != nil {
			t.Errorf("a live record was pruned: %v", err)
		}
		if ok, _ := st.Marked(ctx, smart.MarkBootstrap, "for-ever"); !ok {
			t.Error("a record without expiry was pruned")
		}
	})
}
