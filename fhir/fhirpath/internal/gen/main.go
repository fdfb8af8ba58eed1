// Command gen builds the compact R4 type table that package fhirpath embeds.
//
// It reads the StructureDefinitions of the FHIR R4 resources and data types
// (profiles-resources.json.gz and profiles-types.json.gz) and writes, gzipped,
// one line per type followed by one line per element:
//
//	T <kind> <name> <base>
//	E <name> <max> <type>[,<type>...]
//
// kind is P (primitive), C (complex data type), R (resource) or B (backbone
// element, named by its path, such as Patient.contact). An element whose name
// ends in [x] is a choice. max is 1 or *. A contentReference element names
// the backbone type it reuses.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	defs := flag.String("defs", "../../../shared/fhir-r4/definitions", "folder holding profiles-resources.json.gz and profiles-types.json.gz")
	out := flag.String("out", "r4model.gz", "file to write")
	flag.Parse()
	table, err := Table(*defs)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, Compress(table), 0o644); err != nil {
		log.Fatal(err)
	}
}

// Compress gzips the table deterministically (no name, no time stamp).
func Compress(table []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(table)
	zw.Close()
	return buf.Bytes()
}

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Type           string `json:"type"`
	Abstract       bool   `json:"abstract"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
}

type elementDefinition struct {
	Path             string `json:"path"`
	Max              string `json:"max"`
	ContentReference string `json:"contentReference"`
	Type             []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

const fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

// Table reads the definitions and returns the uncompressed table.
func Table(defsDir string) ([]byte, error) {
	var sds []structureDefinition
	for _, name := range []string{"profiles-types.json.gz", "profiles-resources.json.gz"} {
		got, err := readBundle(filepath.Join(defsDir, name))
		if err != nil {
			return nil, err
		}
		sds = append(sds, got...)
	}
	sort.SliceStable(sds, func(i, j int) bool { return sds[i].ID < sds[j].ID })
	var buf bytes.Buffer
	for _, sd := range sds {
		if sd.Kind == "logical" || sd.Type == "" {
			continue
		}
		base := "-"
		if i := strings.LastIndexByte(sd.BaseDefinition, '/'); i >= 0 {
			base = sd.BaseDefinition[i+1:]
		}
		kind := map[string]string{"primitive-type": "P", "complex-type": "C", "resource": "R"}[sd.Kind]
		if kind == "" {
			return nil, fmt.Errorf("gen: %s: unknown kind %q", sd.ID, sd.Kind)
		}
		// SimpleQuantity and MoneyQuantity, profiles on Quantity, are kept
		// as its subtypes.
		if err := writeType(&buf, kind, sd.ID, base, sd); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func readBundle(path string) ([]structureDefinition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", path, err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", path, err)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil {
		return nil, fmt.Errorf("gen: %s: %w", path, err)
	}
	var out []structureDefinition
	for _, e := range bundle.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType != "StructureDefinition" {
			continue
		}
		var sd structureDefinition
		if err := json.Unmarshal(e.Resource, &sd); err != nil {
			return nil, fmt.Errorf("gen: %s: %w", path, err)
		}
		if sd.ResourceType == "StructureDefinition" {
			out = append(out, sd)
		}
	}
	return out, nil
}

// writeType writes the type and, after it, every backbone element type it
// declares, in snapshot order.
func writeType(buf *bytes.Buffer, kind, name, base string, sd structureDefinition) error {
	elems := sd.Snapshot.Element
	if len(elems) == 0 {
		return fmt.Errorf("gen: %s has no snapshot", sd.ID)
	}
	root := elems[0].Path
	// children[parentPath] = element definitions directly under it.
	children := map[string][]elementDefinition{}
	var order []string // backbone paths in order of appearance
	for _, e := range elems[1:] {
		i := strings.LastIndexByte(e.Path, '.')
		parent := e.Path[:i]
		children[parent] = append(children[parent], e)
	}
	for _, e := range elems[1:] {
		if len(e.Type) == 1 && (e.Type[0].Code == "BackboneElement" || e.Type[0].Code == "Element") && len(children[e.Path]) > 0 {
			order = append(order, e.Path)
		}
	}
	fmt.Fprintf(buf, "T %s %s %s\n", kind, name, base)
	if err := writeElements(buf, sd, root, children[root], kind == "P"); err != nil {
		return err
	}
	for _, p := range order {
		bbBase := "BackboneElement"
		for _, e := range elems {
			if e.Path == p && e.Type[0].Code == "Element" {
				bbBase = "Element"
			}
		}
		fmt.Fprintf(buf, "T B %s %s\n", p, bbBase)
		if err := writeElements(buf, sd, root, children[p], false); err != nil {
			return err
		}
	}
	return nil
}

func writeElements(buf *bytes.Buffer, sd structureDefinition, root string, elems []elementDefinition, primitive bool) error {
	for _, e := range elems {
		name := e.Path[strings.LastIndexByte(e.Path, '.')+1:]
		if primitive && name == "value" {
			continue // the JSON value itself
		}
		max := "1"
		if e.Max != "1" && e.Max != "0" {
			max = "*"
		}
		var types []string
		switch {
		case e.ContentReference != "":
			types = []string{strings.TrimPrefix(e.ContentReference, "#")}
		case len(e.Type) == 1 && (e.Type[0].Code == "BackboneElement" || e.Type[0].Code == "Element") && name != "extension":
			types = []string{e.Path}
		default:
			for _, t := range e.Type {
				code := t.Code
				if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
					code = "string"
					for _, x := range t.Extension {
						if x.URL == fhirTypeExt {
							code = x.ValueURL
						}
					}
					if name == "id" && sd.Kind == "resource" && strings.Count(e.Path, ".") == 1 {
						code = "id" // Resource.id is an id (the snapshot says string)
					}
				}
				types = append(types, code)
			}
		}
		if len(types) == 0 {
			return fmt.Errorf("gen: %s has no type", e.Path)
		}
		fmt.Fprintf(buf, "E %s %s %s\n", name, max, strings.Join(types, ","))
	}
	return nil
}
