import ArgumentParser
import EquicastCore
import EquicastCrypto
import EquicastPosix
import Foundation

struct Rollout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hand a release to one node of the fleet and follow it as it spreads.",
        subcommands: [RolloutPush.self, RolloutStatus.self])
}

struct FleetOptions: ParsableArguments {
    @Option(help: "A node's address (host:port, the agent's BindAddress or AdvertiseAddress).")
    var agent: String
    @Option(name: .customLong("fleet-key"), help: "The fleet key file (the operator is authenticated by it).")
    var fleetKey = "/etc/equicast/fleet.key"
    @Option(help: "Seconds to wait for each answer.")
    var timeout = 30

    func client() throws -> FleetClient {
        let address: SocketAddress
        do { address = try SocketAddress.parse(agent) } catch { throw ValidationError("--agent \(agent): \(error)") }
        let key: SymmetricKey
        do { key = try KeyFile.loadSymmetric(fleetKey) } catch { throw ValidationError("--fleet-key: \(error)") }
        return FleetClient(agent: address, key: key, timeoutMilliseconds: timeout * 1000)
    }
}

/// Talks to one agent over its TCP port, as a fleet member would: every request is a sealed frame under the
/// fleet key (from a fresh random sender id), answered by one sealed frame. Requests go one after another over
/// one connection (a push of hundreds of chunks pays one handshake, not one per chunk); a connection the agent
/// closed in between (it closes idle ones) is opened again and the request sent once more.
final class FleetClient {
    let agent: SocketAddress
    let sealer: FrameSealer
    var opener: FrameOpener
    var sequence: UInt64 = 0
    let timeoutMilliseconds: Int
    private var socket: StreamSocket?
    private var framer = StreamFramer()

    /// The connection ended before any of the answer arrived.
    private struct ClosedBeforeAnswer: Error {}

    init(agent: SocketAddress, key: SymmetricKey, timeoutMilliseconds: Int) {
        self.agent = agent
        let keyring = try! FleetKeyring(primary: FleetKey(master: key))
        var id: UInt64 = 0
        for b in secureRandomBytes(8) { id = id << 8 | UInt64(b) }
        sealer = FrameSealer(sender: NodeID(rawValue: id), keyring: keyring, encryptionEnabled: true)
        opener = FrameOpener(keyring: keyring, requireEncryption: true, senderCapacity: 4)
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    func exchange(_ message: TransferMessage) throws -> TransferMessage {
        let payload = message.encode()
        if let open = socket {
            // Every request is idempotent (a manifest, a chunk, a status query): sending it again is safe.
            do { return try roundTrip(payload, on: open) } catch is ClosedBeforeAnswer { socket = nil }
        }
        let fresh = try StreamSocket.connect(to: agent)
        socket = fresh
        framer = StreamFramer()
        do { return try roundTrip(payload, on: fresh) } catch is ClosedBeforeAnswer {
            socket = nil
            throw ValidationError(
                "\(agent) closed the connection without answering (a wrong fleet key, or not an Equicast agent?)")
        }
    }

    private func roundTrip(_ payload: [UInt8], on socket: StreamSocket) throws -> TransferMessage {
        sequence += 1
        let request = sealer.seal(payload, messageClass: .data, sequence: sequence, nonce: secureRandomBytes(24))
        var poller = Poller()
        let deadline = Date().addingTimeInterval(Double(timeoutMilliseconds) / 1000)
        var written = 0
        while true {
            let left = Int(deadline.timeIntervalSinceNow * 1000)
            if left <= 0 {
                self.socket = nil
                throw ValidationError("\(agent) did not answer within \(timeoutMilliseconds / 1000) s")
            }
            poller.watch([(socket.fd, written < request.count ? .writable | .readable : .readable)])
            let ready = try poller.wait(timeoutMilliseconds: Int32(min(left, 1000)))
            guard !ready.isEmpty else { continue }
            if socket.connecting {
                do { try socket.finishConnect() } catch {
                    self.socket = nil
                    throw ValidationError("cannot connect to \(agent): \(error)")
                }
            }
            if written < request.count {
                do { written += try socket.write(request, from: written) } catch { throw ClosedBeforeAnswer() }
                continue
            }
            let bytes: [UInt8]?
            do { bytes = try socket.read(limit: 1 << 20) } catch { throw ClosedBeforeAnswer() }
            guard let bytes else { continue }
            if bytes.isEmpty {
                if framer.bufferedByteCount > 0 {
                    self.socket = nil
                    throw ValidationError("\(agent) closed the connection in the middle of its answer")
                }
                throw ClosedBeforeAnswer()
            }
            framer.append(bytes)
            if let frame = try framer.nextFrame() {
                let opened: OpenedFrame
                do { opened = try opener.open(frame, transport: .stream) } catch {
                    self.socket = nil
                    throw ValidationError("the answer from \(agent) is refused: \(error)")
                }
                return try TransferMessage.decode(opened.payload)
            }
        }
    }
}

struct RolloutPush: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Hand a release file to one node; the fleet carries it to every eligible device.")
    @Argument(help: "The .eqr release file.") var file: String
    @Option(
        help: ArgumentHelp(
            "A release public key the devices trust (repeatable): the push is refused unless one of them signed it.",
            valueName: "file"))
    var pubkey: [String] = []
    @OptionGroup var fleet: FleetOptions

    func run() throws {
        let trusted = try pubkey.map { try Ed25519.PublicKey(bytes: KeyFile.loadPublic($0, byteCount: 32)) }
        let bytes = try readWholeFile(file, what: "release file")
        let parts: (manifest: [UInt8], chunks: [[UInt8]])
        let manifest: ReleaseManifest
        do {
            // The whole file is checked before anything is sent: its signature (by the key it names, or by one
            // of --pubkey), every chunk and the image. A damaged file pushed would leave the node holding a
            // release it can never complete.
            let keys =
                trusted.isEmpty ? [try SignedManifest.signer(of: try ReleaseFile.split(bytes).manifest)] : trusted
            manifest = try ReleaseFile.verify(bytes, trustedKeys: keys).manifest
            let split = try ReleaseFile.split(bytes)
            parts = (split.manifest, split.chunks.map { Array(bytes[$0]) })
        } catch {
            let untrusted = if case ReleaseError.untrustedSigner = error { true } else { false }
            print(
                "REFUSED \(file): \(error). Nothing was sent; "
                    + (untrusted ? "sign it with a release key the devices trust." : "build it again or copy it again.")
            )
            throw ExitCode(1)
        }
        let client = try fleet.client()
        let answer = try client.exchange(TransferMessage(type: .push, payload: parts.manifest))
        if answer.pushResult == .refused {
            print("REFUSED by \(fleet.agent): \(answer.reason)")
            throw ExitCode(1)
        }
        let releaseID = Digest256(hashing: parts.manifest)
        var haves = answer.haves ?? ChunkBitfield(count: parts.chunks.count)
        let already = haves.setCount
        var sent = 0
        var progress = ProgressBar()
        for (i, chunk) in parts.chunks.enumerated() where !haves.contains(i) {
            let reply = try client.exchange(
                TransferMessage(type: .pushChunk, releaseID: releaseID, index: UInt16(i), payload: chunk))
            if reply.pushResult == .refused {
                print("REFUSED by \(fleet.agent): \(reply.reason)")
                throw ExitCode(1)
            }
            if let h = reply.haves { haves = h }
            sent += 1
            progress.show("pushing to \(fleet.agent)", done: haves.setCount, total: parts.chunks.count)
        }
        if sent > 0 { finishProgressLine() }
        print(
            "pushed \(manifest.product) version \(manifest.version) to \(fleet.agent): \(sent) chunks sent, "
                + "\(already) already there; release \(releaseID.shortHex) is spreading. Follow it with "
                + "'equicast rollout status --agent \(fleet.agent) --watch'.")
    }
}

struct RolloutStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "What one node knows of every node's firmware and update progress.")
    @OptionGroup var fleet: FleetOptions
    @Flag(help: "Refresh every second, with a progress bar, until every eligible node has finished.")
    var watch = false
    @Option(help: "With --watch: give up after this many seconds (exit 2).")
    var within = 3600

    func run() throws {
        let client = try fleet.client()
        let started = Date()
        var progress = ProgressBar()
        while true {
            let reply = try client.exchange(TransferMessage(type: .statusRequest))
            let summary = RolloutSummary(reply)
            if !watch {
                print(summary.table())
                print(summary.line())
                return
            }
            progress.show(summary.line(), done: summary.finished, total: max(1, summary.eligible))
            if summary.eligible > 0 && summary.finished == summary.eligible {
                finishProgressLine()
                print(summary.table())
                print(summary.line())
                if summary.failed > 0 { throw ExitCode(1) }
                return
            }
            if Date().timeIntervalSince(started) > Double(within) {
                finishProgressLine()
                print(summary.table())
                print("gave up after \(within) s: \(summary.line())")
                throw ExitCode(2)
            }
            Thread.sleep(forTimeInterval: 1)
        }
    }
}

/// A status reply summed up: which nodes the spreading release is for, and where each stands.
struct RolloutSummary {
    let statuses: [NodeStatus]
    let advert: ReleaseAdvert?
    var eligible = 0
    var finished = 0
    var committed = 0
    var failed = 0

    init(_ reply: TransferMessage) {
        statuses = reply.statuses
        advert = reply.advert
        guard let a = advert else { return }
        for s in statuses where s.productTag == a.productTag {
            // Eligible: it targets this release, or it ran an older version when it last reported.
            guard s.targetVersion == a.version || s.installedVersion < a.version || s.installedVersion == a.version
            else { continue }
            eligible += 1
            if s.installedVersion >= a.version && (s.state == .committed || s.state == .idle) {
                committed += 1
                finished += 1
            } else if s.targetVersion == a.version && (s.state == .failed || s.state == .rolledBack) {
                failed += 1
                finished += 1
            }
        }
    }

    func line() -> String {
        guard let a = advert else { return "\(statuses.count) nodes known; no release is spreading" }
        return "version \(a.version): \(committed) of \(eligible) eligible nodes running it, \(failed) failed, "
            + "\(eligible - finished) in progress (\(statuses.count) nodes known)"
    }

    func table() -> String {
        var rows = ["node\tinstalled\ttarget\tstate\tchunks"]
        for s in statuses {
            let chunks = s.chunksTotal == 0 ? "-" : "\(s.chunksHave)/\(s.chunksTotal)"
            rows.append(
                "\(s.node)\t\(s.installedVersion)\t\(s.targetVersion == 0 ? "-" : "\(s.targetVersion)")\t"
                    + "\(s.state.name)\t\(chunks)")
        }
        return alignedColumns(rows.joined(separator: "\n"))
    }
}

/// A progress bar on one line: redrawn in place on a terminal. Into a pipe or a log it writes a line only
/// when the label changes or another tenth is done, so a long push leaves ten lines, not one per chunk.
struct ProgressBar {
    private var last: (label: String, tenth: Int)?

    mutating func show(_ label: String, done: Int, total: Int) {
        let width = 30
        let filled = total == 0 ? 0 : min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = "[\(bar)] \(done)/\(total) \(label)"
        if isatty(1) != 0 {
            FileHandle.standardOutput.write(Data(("\r\u{1b}[K" + text).utf8))
            return
        }
        let tenth = total == 0 ? 0 : done * 10 / total
        if let last, last.label == label && last.tenth == tenth { return }
        last = (label, tenth)
        print(text)
    }
}

func finishProgressLine() {
    if isatty(1) != 0 { print("") }
}
