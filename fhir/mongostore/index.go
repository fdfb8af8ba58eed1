package mongostore

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/fhirhub/fhirhub/fhir"
)

// entryDoc is a fhir.IndexEntry as stored in the ix field of version and
// current documents (see entryList).
type entryDoc struct {
	Param  string  `bson:"p"`
	Type   string  `bson:"t,omitempty"`
	Comp   int     `bson:"c,omitempty"`
	Group  int     `bson:"g,omitempty"`
	System string  `bson:"sy,omitempty"`
	Code   string  `bson:"co,omitempty"`
	Text   string  `bson:"tx,omitempty"`
	IDType string  `bson:"it,omitempty"`
	Str    string  `bson:"s,omitempty"`
	Exact  string  `bson:"x,omitempty"`
	Low    float64 `bson:"lo,omitempty"`
	High   float64 `bson:"hi,omitempty"`
	Start  int64   `bson:"st,omitempty"`
	End    int64   `bson:"en,omitempty"`
	RefTyp string  `bson:"rt,omitempty"`
	RefID  string  `bson:"ri,omitempty"`
	RefVer string  `bson:"rv,omitempty"`
	RefURL string  `bson:"ru,omitempty"`
}

// entryList is the ix field: the index entries of a version, stored as one
// binary value holding the BSON document {e: [entries]}. The database never
// looks inside (queries use the fields fieldsOf derives), and one opaque
// value costs FerretDB, which decodes every document it scans value by
// value, far less than an array of documents.
type entryList []entryDoc

// MarshalBSONValue implements bson.ValueMarshaler.
func (l entryList) MarshalBSONValue() (byte, []byte, error) {
	b, err := bson.Marshal(struct {
		E []entryDoc `bson:"e"`
	}{E: l})
	if err != nil {
		return 0, nil, fmt.Errorf("encode index entries: %w", err)
	}
	return byte(bson.TypeBinary), bsoncore.AppendBinary(nil, 0, b), nil
}

// UnmarshalBSONValue implements bson.ValueUnmarshaler.
func (l *entryList) UnmarshalBSONValue(typ byte, data []byte) error {
	if bson.Type(typ) == bson.TypeNull {
		*l = nil
		return nil
	}
	if bson.Type(typ) != bson.TypeBinary {
		return fmt.Errorf("index entries: BSON type %v, want binary", bson.Type(typ))
	}
	_, b, _, ok := bsoncore.ReadBinary(data)
	if !ok {
		return errors.New("index entries: malformed binary")
	}
	var v struct {
		E []entryDoc `bson:"e"`
	}
	if err := bson.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode index entries: %w", err)
	}
	*l = v.E
	return nil
}

func toEntryList(es []fhir.IndexEntry) entryList {
	if len(es) == 0 {
		return nil
	}
	out := make(entryList, len(es))
	for i, e := range es {
		out[i] = entryDoc{
			Param: e.Param, Type: string(e.Type), Comp: e.Comp, Group: e.Group,
			System: e.System, Code: e.Code, Text: e.Text, IDType: e.IDType,
			Str: e.Str, Exact: e.Exact, Low: e.Low, High: e.High, Start: e.Start, End: e.End,
			RefTyp: e.RefType, RefID: e.RefID, RefVer: e.RefVersion, RefURL: e.RefURL,
		}
	}
	return out
}

func (l entryList) entries() []fhir.IndexEntry {
	out := make([]fhir.IndexEntry, len(l))
	for i, d := range l {
		out[i] = fhir.IndexEntry{
			Param: d.Param, Type: fhir.ParamType(d.Type), Comp: d.Comp, Group: d.Group,
			System: d.System, Code: d.Code, Text: d.Text, IDType: d.IDType,
			Str: d.Str, Exact: d.Exact, Low: d.Low, High: d.High, Start: d.Start, End: d.End,
			RefType: d.RefTyp, RefID: d.RefID, RefVersion: d.RefVer, RefURL: d.RefURL,
		}
	}
	return out
}

// entryList returns the entries of a version (or current document),
// recovered from its token keys when it predates ix.
func (d *versionDoc) entryList() entryList {
	if len(d.Ix) == 0 && len(d.Tok) > 0 {
		return legacyEntries(d.Tok)
	}
	return d.Ix
}

// legacyEntries recovers the identifier tokens of a version written before
// versions carried their entries, from its token keys (tok): the keys of
// kind "e" hold param, system and code.
func legacyEntries(tok []string) entryList {
	var out entryList
	for _, k := range tok {
		parts := strings.Split(k, tokenSep)
		if len(parts) == 4 && parts[1] == "e" {
			out = append(out, entryDoc{Param: tokenUnescaper.Replace(parts[0]), Type: string(fhir.TypeToken),
				System: tokenUnescaper.Replace(parts[2]), Code: tokenUnescaper.Replace(parts[3])})
		}
	}
	return out
}

// Search keys (the k array of current documents) are strings matched with
// $in, $nin, $ne and anchored $regex, so that one condition on the array
// selects the resources with one entry that satisfies it (FerretDB has no
// $elemMatch). A key is the escaped parameter code, the component (0: a
// plain entry), the kind and the values, joined by tokenSep; every part but
// the last is escaped (see tokenEscaper), the last is raw, so a regex can
// compare a prefix of the last value, or of the value after an escaped one,
// and no two keys collide.
const (
	kindPresent    = "p"  // the parameter has a component entry (no component number or values)
	kindTokenExact = "te" // system, code ("system|" is a prefix of these)
	kindTokenCode  = "tc" // code, when not empty
	kindText       = "tx" // :text, when not empty
	kindOfType     = "ot" // identifier type "system|code", code
	kindString     = "sn" // normalised string
	kindExact      = "sx" // string as written
	kindURI        = "u"  // uri
	kindRef        = "r"  // id, type (empty for an untyped reference)
	kindRefVer     = "rv" // id, type, version
	kindRefURL     = "ru" // URL, version (may be empty)
)

const tokenSep = "\x1f"

var (
	tokenEscaper   = strings.NewReplacer("%", "%25", tokenSep, "%1F")
	tokenUnescaper = strings.NewReplacer("%25", "%", "%1F", tokenSep)
)

// searchKey joins parts into a key: all but the last escaped.
func searchKey(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString(tokenSep)
		}
		if i < len(parts)-1 {
			b.WriteString(tokenEscaper.Replace(p))
		} else {
			b.WriteString(p)
		}
	}
	return b.String()
}

func presentKey(param string) string { return searchKey(param, kindPresent) }

// compKey is the key of kind for component comp (0: plain entries) of param.
func compKey(param string, comp int, kind string, parts ...string) string {
	return searchKey(append([]string{param, strconv.Itoa(comp), kind}, parts...)...)
}

// hasTokenKeys reports whether an entry is matched as a token: what
// search.Match's tokenMatches accepts (no reference target), of a token
// parameter or, for :identifier, a Reference.identifier.
func hasTokenKeys(e *entryDoc) bool {
	switch fhir.ParamType(e.Type) {
	case fhir.TypeString, fhir.TypeURI, fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeDate, fhir.TypeSpecial:
		return false
	case fhir.TypeReference:
		return e.RefTyp == "" && e.RefID == "" && e.RefURL == ""
	}
	return e.RefID == "" && e.RefURL == ""
}

// fieldName encodes a parameter code for use in a field name: characters
// other than ASCII letters, digits, '_' and '-' become %XX, so '~' can
// separate parts.
func fieldName(param string) string {
	var b strings.Builder
	for i := 0; i < len(param); i++ {
		c := param[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// Sort kinds: which entries a sort on a parameter reads (those the SQLite
// engine keeps in the same table) and which value.
const (
	sortString = "s" // string and uri entries: Str
	sortToken  = "t" // token entries, and references without a target: Code
	sortRef    = "r" // references with a target: RefID
	sortDate   = "d" // date: Start (ascending), End (descending)
	sortNumber = "n" // number, quantity, near: Low (ascending), High (descending)
)

func sortKindOf(e *entryDoc) string {
	switch fhir.ParamType(e.Type) {
	case fhir.TypeString, fhir.TypeURI:
		return sortString
	case fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeSpecial:
		return sortNumber
	case fhir.TypeDate:
		return sortDate
	case fhir.TypeReference:
		if e.RefID != "" || e.RefURL != "" {
			return sortRef
		}
	}
	return sortToken
}

var sortKinds = []string{sortString, sortToken, sortRef, sortDate, sortNumber}

// sortField is the field of sk holding one value of a sort kind of param:
// "a" the least (ascending), "d" the greatest (descending), "f" a flag
// present exactly when the values are.
func sortField(param, kind, which string) string { return fieldName(param) + "~" + kind + "~" + which }

// rangeField is the field of n (l, h) or d (s, e) holding the bounds of the
// plain entries of param.
func rangeField(param, which string) string { return fieldName(param) + "~" + which }

// searchFields are the fields of a current document derived from the
// entries of its version: k (keys), n and d (the bounds of number and date
// entries, arrays per parameter, for range conditions) and sk (sort values).
type searchFields struct {
	keys       []string
	num, date  bson.D
	sortValues bson.D
}

// sortAgg accumulates the least and greatest sort value of one kind.
type sortAgg struct {
	kind   string
	lo, hi any
}

func less(a, b any) bool {
	switch x := a.(type) {
	case string:
		return x < b.(string)
	case float64:
		return x < b.(float64)
	case int64:
		return x < b.(int64)
	}
	return false
}

func (a *sortAgg) add(lo, hi any) {
	if a.lo == nil || less(lo, a.lo) {
		a.lo = lo
	}
	if a.hi == nil || less(a.hi, hi) {
		a.hi = hi
	}
}

// fieldsOf computes the search fields of a version's entries.
func fieldsOf(ix entryList) searchFields {
	f := searchFields{keys: []string{}, num: bson.D{}, date: bson.D{}, sortValues: bson.D{}}
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			f.keys = append(f.keys, k)
		}
	}
	type bounds struct{ lo, hi bson.A }
	nums, dates := map[string]*bounds{}, map[string]*bounds{}
	sorts := map[[2]string]*sortAgg{}
	appendBounds := func(m map[string]*bounds, p string, lo, hi any) {
		b := m[p]
		if b == nil {
			b = &bounds{}
			m[p] = b
		}
		b.lo, b.hi = append(b.lo, lo), append(b.hi, hi)
	}
	for i := range ix {
		e := &ix[i]
		p, c := e.Param, e.Comp
		key := func(kind string, parts ...string) { add(compKey(p, c, kind, parts...)) }
		if c != 0 {
			add(presentKey(p)) // plain entries leave a sort value, whose flag tells
		}
		switch fhir.ParamType(e.Type) {
		case fhir.TypeString:
			key(kindString, e.Str)
			key(kindExact, e.Exact)
		case fhir.TypeURI:
			key(kindURI, e.Str)
		case fhir.TypeNumber, fhir.TypeQuantity, fhir.TypeSpecial:
			if c == 0 {
				appendBounds(nums, p, e.Low, e.High)
			}
		case fhir.TypeDate:
			if c == 0 {
				appendBounds(dates, p, e.Start, e.End)
			}
		case fhir.TypeReference:
			if e.RefID != "" {
				key(kindRef, e.RefID, e.RefTyp)
				if e.RefVer != "" {
					key(kindRefVer, e.RefID, e.RefTyp, e.RefVer)
				}
			}
			if e.RefURL != "" {
				key(kindRefURL, e.RefURL, e.RefVer)
			}
		}
		if hasTokenKeys(e) {
			key(kindTokenExact, e.System, e.Code)
			if e.Code != "" {
				key(kindTokenCode, e.Code)
			}
		}
		if e.Text != "" {
			key(kindText, e.Text)
		}
		if e.IDType != "" {
			key(kindOfType, e.IDType, e.Code)
		}
		if c != 0 {
			continue
		}
		kind := sortKindOf(e)
		a := sorts[[2]string{p, kind}]
		if a == nil {
			a = &sortAgg{kind: kind}
			sorts[[2]string{p, kind}] = a
		}
		switch kind {
		case sortString:
			a.add(e.Str, e.Str)
		case sortToken:
			a.add(e.Code, e.Code)
		case sortRef:
			a.add(e.RefID, e.RefID)
		case sortDate:
			a.add(e.Start, e.End)
		default:
			a.add(e.Low, e.High)
		}
	}
	for _, p := range sortedKeys(nums) {
		f.num = append(f.num, bson.E{Key: rangeField(p, "l"), Value: nums[p].lo}, bson.E{Key: rangeField(p, "h"), Value: nums[p].hi})
	}
	for _, p := range sortedKeys(dates) {
		f.date = append(f.date, bson.E{Key: rangeField(p, "s"), Value: dates[p].lo}, bson.E{Key: rangeField(p, "e"), Value: dates[p].hi})
	}
	keys := make([][2]string, 0, len(sorts))
	for k := range sorts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	for _, k := range keys {
		a := sorts[k]
		f.sortValues = append(f.sortValues,
			bson.E{Key: sortField(k[0], k[1], "f"), Value: int32(1)},
			bson.E{Key: sortField(k[0], k[1], "a"), Value: a.lo},
			bson.E{Key: sortField(k[0], k[1], "d"), Value: a.hi})
	}
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
