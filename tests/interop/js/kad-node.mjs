// A stock js-libp2p node for p2pdm's interop tests: TCP on loopback, Noise,
// Yamux, identify, ping and a Kademlia DHT server on /ipfs/kad/1.0.0. It knows
// nothing of p2pdm. It prints one JSON line on stdout once listening,
//   {"addr": "/ip4/127.0.0.1/tcp/<port>/p2p/<PeerID>", "peer_id": "<PeerID>"}
// and runs until its stdin closes or it gets SIGTERM/SIGINT.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      // The default mapper drops private and loopback addresses from every
      // peer record it sends or takes in; the tests run on 127.0.0.1.
      peerInfoMapper: passthroughMapper
    })
  }
})

let stopping = false
async function stop () {
  if (stopping) return
  stopping = true
  try {
    await node.stop()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('error', stop)
process.stdin.resume()

const [addr] = node.getMultiaddrs()
process.stdout.write(JSON.stringify({ addr: addr.toString(), peer_id: node.peerId.toString() }) + '\n')
