// yaml-oracle reads YAML the way kubectl reads manifests, so that probegate's loader can be
// compared with it (tests/yaml_conformance.rs).
//
// kubectl's resource builder (cli-runtime's StreamVisitor) reads a file with
// k8s.io/apimachinery's NewYAMLOrJSONDecoder(r, 4096), decodes each document into a
// runtime.RawExtension (sigs.k8s.io/yaml: go-yaml v2, then JSON), skips documents that
// are empty or null, and stops at the first error. This program does the same.
//
// Usage:
//
//	yaml-oracle < stream.yaml
//	    One YAML stream on stdin: each document kubectl keeps, as one line of JSON; an error
//	    as a line "error: MESSAGE", and exit status 1.
//	yaml-oracle -batch < streams.jsonl
//	    Many streams, one run: each input line is a JSON string holding a whole YAML stream;
//	    each output line is {"docs":[...]} or {"docs":[...],"error":"MESSAGE"}, in order
//	    (docs: those read before the error). Each answer is flushed as soon as it is written.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// result is one stream as kubectl reads it.
type result struct {
	Docs  []json.RawMessage `json:"docs"`
	Error *string           `json:"error,omitempty"`
}

func read(stream string) result {
	r := result{Docs: []json.RawMessage{}}
	d := yaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var doc json.RawMessage
		err := d.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			msg := err.Error()
			r.Error = &msg
			return r
		}
		// As StreamVisitor: empty and null documents are not objects, and are skipped.
		doc = bytes.TrimSpace(doc)
		if len(doc) == 0 || bytes.Equal(doc, []byte("null")) {
			continue
		}
		r.Docs = append(r.Docs, doc)
	}
}

func main() {
	batch := flag.Bool("batch", false, "read JSON strings (one YAML stream each), write one JSON result each")
	flag.Parse()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if !*batch {
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "yaml-oracle:", err)
			os.Exit(2)
		}
		r := read(string(in))
		for _, doc := range r.Docs {
			fmt.Fprintf(out, "%s\n", doc)
		}
		if r.Error != nil {
			fmt.Fprintf(out, "error: %s\n", *r.Error)
			out.Flush()
			os.Exit(1)
		}
		return
	}
	in := json.NewDecoder(bufio.NewReader(os.Stdin))
	enc := json.NewEncoder(out)
	for {
		var stream string
		if err := in.Decode(&stream); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "yaml-oracle: bad batch input:", err)
			out.Flush()
			os.Exit(2)
		}
		if err := enc.Encode(read(stream)); err != nil {
			fmt.Fprintln(os.Stderr, "yaml-oracle:", err)
			os.Exit(2)
		}
		// A caller may wait for each answer before it writes the next question.
		if err := out.Flush(); err != nil {
			os.Exit(2)
		}
	}
}
