package smart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fhirhub/fhirhub/smart"
	"github.com/fhirhub/fhirhub/smart/sqlitestate"
)

// The Server issues access tokens at its token endpoint and is the
// Verifier of them: here a backend service trades its secret for a token
// (client_credentials), and the FHIR API asks Verify what the token grants.
func ExampleServer_Verify() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "smart-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st := sqlitestate.New(dir) // or mongostate.New(uri, database)
	if err := st.Open(ctx); err != nil {
		log.Fatal(err)
	}
	defer st.Close(ctx)

	// The FHIR server's listener: the endpoints live under /auth beside the
	// FHIR base, which is the tokens' audience.
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	defer hs.Close()
	srv := &smart.Server{Store: st, BaseURL: hs.URL + "/fhir"}
	if err := srv.Open(ctx); err != nil { // loads or creates the signing key
		log.Fatal(err)
	}
	defer srv.Close(ctx)
	mux.Handle(smart.AuthPath+"/", srv.Handler())
	mux.Handle(smart.DiscoveryPath, srv.Handler())

	secret, err := smart.RegisterClient(ctx, st, &smart.Client{ID: "reports", Type: smart.ClientSymmetric,
		Scopes: []string{"system/Observation.rs"}}, time.Now())
	if err != nil {
		log.Fatal(err)
	}

	// The client's side: POST to the token endpoint.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs system/Patient.rs"}}
	req, _ := http.NewRequest("POST", hs.URL+smart.AuthPath+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("reports", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var tok smart.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.Scope, tok.ExpiresIn)

	// The resource server's side: what does the bearer token grant?
	a, err := srv.Verify(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client:", a.ClientID)
	fmt.Println("search Observation:", a.Allows("Observation", smart.PermSearch))
	fmt.Println("read Patient:", a.Allows("Patient", smart.PermRead))

	// A token it did not issue is refused.
	head, _, _ := strings.Cut(tok.AccessToken, ".")
	_, err = srv.Verify(ctx, head+".eyJzY29wZSI6InN5c3RlbS8qLmNydWRzIn0.c2ln")
	fmt.Println(err)
	// Output:
	// Bearer system/Observation.rs 3600
	// client: reports
	// search Observation: true
	// read Patient: false
	// smart: the token is not signed by a key of this server
}
