// Freighter (the Stellar browser wallet) for users who keep their own key.
import * as freighter from '@stellar/freighter-api'

export async function walletAddress(): Promise<string> {
  const connected = await freighter.isConnected()
  if (!connected.isConnected) throw new Error('Freighter is not installed in this browser.')
  const access = await freighter.requestAccess()
  if (access.error) throw new Error(String(access.error.message ?? access.error))
  return access.address
}

export async function walletSign(xdr: string, networkPassphrase: string, address?: string): Promise<string> {
  const r = await freighter.signTransaction(xdr, { networkPassphrase, address })
  if (r.error) throw new Error(String(r.error.message ?? r.error))
  return r.signedTxXdr
}
