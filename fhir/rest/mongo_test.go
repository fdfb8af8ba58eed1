package rest_test

import "testing"

// TestOnMongoDB runs the interaction tests against the MongoDB engine
// (FerretDB embedded, or FHIR_TEST_MONGODB_URI).
func TestOnMongoDB(t *testing.T) {
	if testing.Short() {
		t.Skip("long: the REST suite on the MongoDB engine")
	}
	engine = "mongo"
	defer func() { engine = "sqlite" }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Create", TestCreate}, {"ReadVRead", TestReadVRead}, {"Update", TestUpdate},
		{"ConcurrentUpdates", TestConcurrentUpdates}, {"Delete", TestDelete},
		{"History", TestHistory}, {"Conditional", TestConditional}, {"Prefer", TestPrefer},
		{"SummaryAndElements", TestSummaryAndElements}, {"BodyLimit", TestBodyLimit},
		{"Everything", TestEverything}, {"Meta", TestMeta},
		{"Scopes", TestScopes}, {"ScopesWrites", TestScopesWrites}, {"ScopesBundles", TestScopesBundles},
	} {
		t.Run(tc.name, tc.f)
	}
}
