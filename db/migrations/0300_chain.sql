-- The chain worker (package mint/chain): the deployment's accounts on each
-- network, custodial patient accounts, mint attempts and minted records.
-- Nothing here is PHI: patients appear only as salted references and
-- Stellar addresses, studies only as their salted study_ref.

-- What Bootstrap set up on a network (all derived from the master seed).
CREATE TABLE chain_deployments (
    network_passphrase text PRIMARY KEY,
    horizon_url        text NOT NULL,
    sponsor            text NOT NULL,
    issuer             text NOT NULL,
    registry           text NOT NULL,
    channels           text[] NOT NULL,
    home_domain        text NOT NULL,
    bootstrapped_at    timestamptz NOT NULL DEFAULT now()
);

-- Custodial patient accounts: (organisation, patient_ref) to the SEP-5
-- index of the account's key. patient_ref is mint.MintJob.PatientRef, an
-- HMAC under the deployment's secret salt of Issuer of Patient ID and
-- Patient ID. The mapping does not depend on the network.
CREATE SEQUENCE patient_account_number MINVALUE 0 START 0; -- SEP-5 index 1000 + n
CREATE TABLE patient_accounts (
    org_id      text NOT NULL,
    patient_ref text NOT NULL CHECK (patient_ref ~ '^[0-9a-f]{64}$'),
    hd_index    integer NOT NULL UNIQUE CHECK (hd_index >= 1000),
    address     text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, patient_ref)
);

-- Custodial accounts known to exist on a network (0 XLM, reserve
-- sponsored). ledger 0: found on chain, creating ledger not known.
CREATE TABLE patient_accounts_on_chain (
    network_passphrase text NOT NULL,
    address            text NOT NULL REFERENCES patient_accounts (address),
    ledger             integer NOT NULL,
    PRIMARY KEY (network_passphrase, address)
);

-- A study whose mint was (perhaps) submitted and not yet recorded. Written
-- before each submission with the minter's clock; a transaction built
-- after last_attempt_at cannot apply once a ledger closes after
-- last_attempt_at + the transaction timeout, so a retry first looks for
-- the mint on chain and, if it is not there, waits out that window.
CREATE TABLE mint_attempts (
    network_passphrase text NOT NULL,
    study_ref          text NOT NULL,
    first_attempt_at   timestamptz NOT NULL,
    last_attempt_at    timestamptz NOT NULL,
    attempts           integer NOT NULL DEFAULT 1,
    PRIMARY KEY (network_passphrase, study_ref)
);

-- One row per study minted on a network: the record token, where it went
-- and the transaction that put it there.
CREATE TABLE minted_records (
    network_passphrase text NOT NULL,
    study_ref          text NOT NULL CHECK (study_ref ~ '^[0-9a-f]{64}$'),
    org_id             text NOT NULL,
    holder             text NOT NULL,
    escrow_balance_id  text NOT NULL DEFAULT '', -- set when minted into a claimable balance
    asset_code         text NOT NULL,
    asset_issuer       text NOT NULL,
    metadata_cid       text NOT NULL,
    tx_hash            text NOT NULL,
    ledger             integer NOT NULL,
    explorer_url       text NOT NULL,
    fee_charged        bigint NOT NULL DEFAULT 0, -- stroops, paid by the sponsor (whole transaction)
    outbox_id          bigint NOT NULL,
    minted_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (network_passphrase, study_ref)
);
CREATE INDEX minted_records_holder ON minted_records (holder);
