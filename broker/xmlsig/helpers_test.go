package xmlsig_test

import "github.com/beevik/etree"

type etreeElement = etree.Element

func newDoc(root *etree.Element) *etree.Document {
	d := etree.NewDocument()
	d.SetRoot(root)
	return d
}
