module github.com/vmtrust/vmtrust

go 1.26.8

require (
	github.com/smallstep/pkcs7 v0.2.3
	github.com/spf13/cobra v1.10.2
)

require (
	github.com/go-json-experiment/json v1.27.2 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
