// Package blobstore owns durable storage of encrypted study objects.
//
// A BlobStore maps keys (slash-separated paths such as
// "studies/<id>/<instance>.enc") to immutable byte streams. Callers store
// only ciphertext (see mint/envelope). Two implementations exist: FS, a
// local directory (the default), and S3, any S3-compatible service.
//
// Put is durable and atomic when it returns: a reader never sees a partly
// written object, and an object whose Put failed does not exist.
package blobstore
