package conformance

// Subsetter applies _summary and _elements through Summarize and
// SelectElements; it satisfies rest.Subsetter.
type Subsetter struct{}

// Summarize applies _summary (see the package function).
func (Subsetter) Summarize(typ string, res map[string]any, mode string) (map[string]any, error) {
	return Summarize(typ, res, mode)
}

// SelectElements applies _elements (see the package function).
func (Subsetter) SelectElements(typ string, res map[string]any, elements []string) (map[string]any, error) {
	return SelectElements(typ, res, elements)
}
