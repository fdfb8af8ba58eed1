package main

import (
	"fmt"
	"math/rand/v2"
)

// patient is a realistic Patient of about 1 KB: identifiers, name, telecom,
// gender, birth date, address, marital status and language.
type patient struct {
	ResourceType  string          `json:"resourceType"`
	ID            string          `json:"id,omitempty"`
	Active        bool            `json:"active"`
	Identifier    []identifier    `json:"identifier"`
	Name          []humanName     `json:"name"`
	Telecom       []contactPoint  `json:"telecom"`
	Gender        string          `json:"gender"`
	BirthDate     string          `json:"birthDate"`
	Address       []address       `json:"address"`
	MaritalStatus codeableConcept `json:"maritalStatus"`
	Communication []communication `json:"communication"`
}

type identifier struct {
	Use    string          `json:"use"`
	Type   codeableConcept `json:"type"`
	System string          `json:"system"`
	Value  string          `json:"value"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text,omitempty"`
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type humanName struct {
	Use    string   `json:"use"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix,omitempty"`
}

type contactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
	Use    string `json:"use"`
	Rank   int    `json:"rank,omitempty"`
}

type address struct {
	Use        string   `json:"use"`
	Type       string   `json:"type"`
	Line       []string `json:"line"`
	City       string   `json:"city"`
	State      string   `json:"state"`
	PostalCode string   `json:"postalCode"`
	Country    string   `json:"country"`
}

type communication struct {
	Language  codeableConcept `json:"language"`
	Preferred bool            `json:"preferred"`
}

var (
	families = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas"}
	females  = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen"}
	males    = []string{"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles"}
	streets  = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Washington Blvd", "Lake Rd", "Hill St"}
	cities   = []struct{ city, state, zip string }{
		{"Boston", "MA", "021"}, {"Springfield", "IL", "627"}, {"Portland", "OR", "972"}, {"Austin", "TX", "787"},
		{"Denver", "CO", "802"}, {"Madison", "WI", "537"}, {"Raleigh", "NC", "276"}, {"Columbus", "OH", "432"},
	}
	marital = []coding{
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "Married"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "S", "Never Married"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "D", "Divorced"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "W", "Widowed"},
	}
)

const identifierTypes = "http://terminology.hl7.org/CodeSystem/v2-0203"

// patientSource is the random source of the n-th preloaded Patient, so that an
// update can rebuild it and change one field.
func patientSource(seed, n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 1<<63|n))
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// newPatient returns a random Patient without id.
func newPatient(rng *rand.Rand) patient {
	gender, given := "female", females
	if rng.IntN(2) == 0 {
		gender, given = "male", males
	}
	family := pick(rng, families)
	first, middle := pick(rng, given), pick(rng, given)
	return patient{
		ResourceType: "Patient",
		Active:       true,
		Identifier: []identifier{
			{Use: "usual", Type: codeableConcept{Coding: []coding{{identifierTypes, "MR", "Medical record number"}}},
				System: "http://hospital.example.org/fhir/sid/mrn", Value: fmt.Sprintf("MRN-%09d", rng.IntN(1e9))},
			{Use: "official", Type: codeableConcept{Coding: []coding{{identifierTypes, "SS", "Social Security number"}}},
				System: "http://hl7.org/fhir/sid/us-ssn", Value: fmt.Sprintf("%03d-%02d-%04d", 100+rng.IntN(800), 1+rng.IntN(99), 1+rng.IntN(9999))},
		},
		Name: []humanName{{Use: "official", Family: family, Given: []string{first, middle}, Prefix: []string{prefix(gender)}}},
		Telecom: []contactPoint{
			{System: "phone", Value: phone(rng), Use: "home", Rank: 1},
			{System: "phone", Value: phone(rng), Use: "mobile", Rank: 2},
			{System: "email", Value: fmt.Sprintf("%s.%s%d@example.com", first, family, rng.IntN(100)), Use: "home"},
		},
		Gender:        gender,
		BirthDate:     fmt.Sprintf("%04d-%02d-%02d", 1930+rng.IntN(90), 1+rng.IntN(12), 1+rng.IntN(28)),
		Address:       []address{newAddress(rng)},
		MaritalStatus: codeableConcept{Coding: []coding{pick(rng, marital)}},
		Communication: []communication{{Preferred: true, Language: codeableConcept{
			Coding: []coding{{"urn:ietf:bcp:47", "en-US", "English (United States)"}}, Text: "English"}}},
	}
}

func prefix(gender string) string {
	if gender == "male" {
		return "Mr."
	}
	return "Ms."
}

func phone(rng *rand.Rand) string {
	return fmt.Sprintf("+1 %03d-555-%04d", 200+rng.IntN(800), rng.IntN(10000))
}

func newAddress(rng *rand.Rand) address {
	c := pick(rng, cities)
	return address{
		Use: "home", Type: "both",
		Line:       []string{fmt.Sprintf("%d %s", 1+rng.IntN(9999), pick(rng, streets)), fmt.Sprintf("Apt %d", 1+rng.IntN(400))},
		City:       c.city,
		State:      c.state,
		PostalCode: fmt.Sprintf("%s%02d", c.zip, rng.IntN(100)),
		Country:    "US",
	}
}
