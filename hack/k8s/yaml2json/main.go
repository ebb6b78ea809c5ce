// Command yaml2json prints, for each YAML document on stdin, the JSON that kubectl and Helm send to the
// API server for it (sigs.k8s.io/yaml, the converter both use), one line per document; a document that
// does not convert prints {"error": "..."}. Tests compare queueworker.kubeyaml with it.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		out, err := yaml.YAMLToJSON(doc)
		if err != nil {
			out, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		fmt.Println(string(out))
	}
}
