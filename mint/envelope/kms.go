package envelope

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMS wraps DEKs with a symmetric key held by AWS KMS or a compatible
// service. The KEK never leaves the service.
type KMS struct {
	client *kms.Client
	keyID  string
}

// kmsContext is the KMS encryption context bound to every wrapped DEK:
// a DEK wrapped for another purpose under the same KMS key won't unwrap
// here. It is logged by KMS, so it must never carry PHI.
var kmsContext = map[string]string{"medimint": "study-dek"}

// NewKMS returns a wrapper for the KMS key keyID (key id, ARN or alias).
func NewKMS(client *kms.Client, keyID string) *KMS {
	return &KMS{client: client, keyID: keyID}
}

// NewKMSClient builds a KMS client from the default AWS configuration
// chain, with region and endpoint overridden when non-empty (endpoint for
// a KMS-compatible service or a VPC endpoint).
func NewKMSClient(ctx context.Context, region, endpoint string) (*kms.Client, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("envelope: kms config: %w", err)
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// KeyID returns "kms:" and the configured key id.
func (k *KMS) KeyID() string { return "kms:" + k.keyID }

// GenerateDataKey asks KMS for a new AES-256 DEK and its wrapped form.
func (k *KMS) GenerateDataKey(ctx context.Context) (dek, wrapped []byte, err error) {
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(k.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: kms generate data key %s: %w", k.keyID, err)
	}
	if len(out.Plaintext) != KeySize {
		return nil, nil, fmt.Errorf("envelope: kms returned a %d-byte data key: %w", len(out.Plaintext), ErrKeySize)
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// Wrap encrypts dek with KMS Encrypt.
func (k *KMS) Wrap(ctx context.Context, dek []byte) ([]byte, error) {
	if len(dek) != KeySize {
		return nil, ErrKeySize
	}
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(k.keyID),
		Plaintext:         dek,
		EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: kms encrypt %s: %w", k.keyID, err)
	}
	return out.CiphertextBlob, nil
}

// Unwrap decrypts a wrapped DEK with KMS Decrypt, insisting on this
// wrapper's key so a blob wrapped under another key is refused.
func (k *KMS) Unwrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(k.keyID),
		CiphertextBlob:    wrapped,
		EncryptionContext: kmsContext,
	})
	if err != nil {
		var wrong *types.IncorrectKeyException
		if errors.As(err, &wrong) {
			return nil, fmt.Errorf("%w: kms: %w", ErrWrongKEK, err)
		}
		var bad *types.InvalidCiphertextException
		if errors.As(err, &bad) {
			return nil, fmt.Errorf("envelope: kms decrypt: %w: %w", ErrAuth, err)
		}
		return nil, fmt.Errorf("envelope: kms decrypt %s: %w", k.keyID, err)
	}
	if len(out.Plaintext) != KeySize {
		return nil, fmt.Errorf("envelope: kms returned a %d-byte key: %w", len(out.Plaintext), ErrKeySize)
	}
	return out.Plaintext, nil
}
