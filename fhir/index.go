package fhir

// ParamType is a search parameter type.
type ParamType string

// The search parameter types of R4.
const (
	TypeNumber    ParamType = "number"
	TypeDate      ParamType = "date"
	TypeString    ParamType = "string"
	TypeToken     ParamType = "token"
	TypeReference ParamType = "reference"
	TypeComposite ParamType = "composite"
	TypeQuantity  ParamType = "quantity"
	TypeURI       ParamType = "uri"
	TypeSpecial   ParamType = "special"
)

// IndexEntry is one index value of a resource for one search parameter: what the
// stores keep and query, and what the matcher compares. Which fields are set
// depends on Type.
type IndexEntry struct {
	Param string
	Type  ParamType
	// Comp and Group place a composite's component values: Comp is the
	// component (1-based; 0 for plain entries), Group the row they share.
	Comp, Group int

	// token: System|Code; Text the normalised display or text (:text);
	// IDType the Identifier.type coding "system|code" (:of-type).
	// quantity: System|Code of the unit.
	// reference: System|Code of Reference.identifier (:identifier).
	System, Code, Text, IDType string

	// string: Str normalised, Exact as written. uri: Str.
	Str, Exact string

	// number and quantity: the value range [Low, High] (equal for a plain
	// number). near: Low latitude, High longitude.
	Low, High float64

	// date: [Start, End) in Unix milliseconds; open ends are math.MinInt64
	// and math.MaxInt64.
	Start, End int64

	// reference: a local Type/id (with Version when versioned), or URL for
	// an absolute or canonical reference (with Version after '|').
	RefType, RefID, RefVersion, RefURL string
}

// IsToken reports whether the entry is a plain token entry (not a component
// of a composite), the kind conditional criteria match on.
func (e IndexEntry) IsToken() bool {
	return (e.Type == TypeToken || e.Type == "") && e.Comp == 0
}
