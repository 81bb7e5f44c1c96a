import ArgumentParser
import EquicastCore
import EquicastCrypto
import EquicastPosix
import Foundation

/// equicast: the operator's tool. It talks to the local agent through its control socket and manages keys.
@main
struct EquicastCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equicast",
        abstract: "Operate an Equicast fleet: members, status, keys, simulation.",
        subcommands: [Members.self, Status.self, Keygen.self, Release.self, Rollout.self, Sim.self])
}

struct AgentOptions: ParsableArguments {
    @Option(name: .customLong("socket"), help: "The agent's control socket.")
    var socket = "/var/lib/equicast/control.sock"

    /// Sends one request line and returns the agent's answer.
    func request(_ line: String) throws -> String {
        let text: String
        do {
            text = try ControlClient.request(line, socket: socket)
        } catch {
            throw ValidationError("cannot reach the agent: \(error) (is equicastd running? see --socket)")
        }
        if text.hasPrefix("error\t") {
            throw ValidationError(String(text.dropFirst(6)).trimmingCharacters(in: .newlines))
        }
        return text
    }
}

/// Tab-separated rows printed as aligned columns.
func printTable(_ text: String) { print(alignedColumns(text)) }

/// Tab-separated rows as aligned columns.
func alignedColumns(_ text: String) -> String {
    let rows = text.split(separator: "\n").map {
        $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
    }
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

struct Members: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the member table of the local agent.")
    @OptionGroup var agent: AgentOptions
    @Flag(help: "Print the raw tab-separated answer.") var raw = false

    func run() throws {
        let text = try agent.request("members")
        if raw {
            print(text, terminator: "")
        } else {
            printTable(text.replacingOccurrences(of: "last_heard_ms_ago", with: "last heard (ms ago)"))
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the local agent's summary and counters.")
    @OptionGroup var agent: AgentOptions
    @Flag(help: "Print the raw tab-separated answer.") var raw = false

    func run() throws {
        let text = try agent.request("status")
        if raw { print(text, terminator: "") } else { printTable(text) }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a key file: a fleet key (shared by every node) or a release signing key pair.")
    @Flag(help: "A 32-byte fleet key, written with mode 0600.") var fleet = false
    @Flag(help: "An Ed25519 release key: FILE (secret, 0600) and FILE.pub.") var release = false
    @Option(name: .shortAndLong, help: "Where to write the key.") var output: String
    @Flag(help: "Replace an existing key file.") var force = false

    func validate() throws {
        if fleet == release { throw ValidationError("choose exactly one of --fleet and --release") }
    }

    func run() throws {
        if fleet {
            var bytes = SymmetricKey.generate().exportBytes()
            defer { wipe(&bytes) }
            try KeyFile.store(bytes, to: output, secret: true, overwrite: force)
            print("wrote fleet key \(output) (mode 0600); copy it to every node's FleetKeyFile")
        } else {
            let key = Ed25519.SigningKey.generate()
            var seed = key.exportSeed()
            defer { wipe(&seed) }
            try KeyFile.store(seed, to: output, secret: true, overwrite: force)
            try KeyFile.store(key.publicKey.bytes, to: output + ".pub", secret: false, overwrite: force)
            print("wrote release key \(output) (secret, mode 0600) and \(output).pub (give this one to devices)")
        }
    }
}

extension PosixError: LocalizedError {
    public var errorDescription: String? { description }
}

/// `equicast release`: build, inspect and verify release files.
struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build, inspect and verify signed release files (.eqr).",
        subcommands: [ReleaseBuild.self, ReleaseInspect.self, ReleaseVerify.self])
}

func readWholeFile(_ path: String, what: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read \(what) \(path)")
    }
    return [UInt8](data)
}

struct ReleaseBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build", abstract: "Cut, compress and sign a firmware image into a release file.")
    @Argument(help: "The firmware image.") var image: String
    @Option(help: "Firmware version: a positive integer, higher than every earlier release.") var version: UInt64
    @Option(help: "Product / hardware compatibility string (A-Z a-z 0-9 . - _).") var product: String
    @Option(help: "The release signing key (from equicast keygen --release).") var key: String
    @Option(name: .shortAndLong, help: "Where to write the .eqr file.") var output: String
    @Option(help: "Cumulative wave sizes in percent, e.g. 5,25,100.") var waves = "5,25,100"
    @Option(help: "Failures above this percentage of a wave pause the rollout.") var maxFailure: UInt8 = 10
    @Option(help: "Seconds a health check may take.") var healthTimeout: UInt32 = 300
    @Flag(help: "Allow installing over a higher version (a deliberate rollback release).") var allowDowngrade = false

    func run() throws {
        let waveList = waves.split(separator: ",").map { UInt8($0.trimmingCharacters(in: .whitespaces)) }
        guard !waveList.contains(nil) else { throw ValidationError("--waves: percentages 1-100, e.g. 5,25,100") }
        var seed = try KeyFile.loadSecret(key, byteCount: Ed25519.seedByteCount)
        defer { wipe(&seed) }
        let signingKey = try Ed25519.SigningKey(seed: seed)
        let bytes = try readWholeFile(image, what: "image")
        let policy = RolloutPolicy(
            wavePercents: waveList.map { $0! }, maxFailurePercent: maxFailure, healthTimeoutSeconds: healthTimeout,
            allowDowngrade: allowDowngrade)
        let built: (manifest: SignedManifest, chunks: [[UInt8]])
        do {
            built = try ReleaseBuilder.build(
                image: bytes, product: product, version: version, createdAt: UInt64(Date().timeIntervalSince1970),
                policy: policy, key: signingKey)
        } catch {
            throw ValidationError("cannot build the release: \(error)")
        }
        let file = ReleaseFile.encode(built.manifest, chunks: built.chunks)
        try FileSystem.writeFileAtomically(output, file)
        let m = built.manifest.manifest
        print(
            "wrote \(output): \(m.product) version \(m.version), \(m.chunks.count) chunks, "
                + "\(file.count) bytes for a \(m.imageSize)-byte image; release \(built.manifest.releaseID.hex)")
    }
}

struct ReleaseInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Describe a release file (its signature is not checked: use verify).")
    @Argument(help: "The .eqr file.") var file: String

    func run() throws {
        let bytes = try readWholeFile(file, what: "release file")
        let parts: (manifest: [UInt8], body: ReleaseManifest, chunks: [Range<Int>])
        do { parts = try ReleaseFile.split(bytes) } catch { throw ValidationError("\(file): \(error)") }
        let m = parts.body
        let compressed = m.chunks.reduce(0) { $0 + UInt64($1.compressedSize) }
        let sizes = m.chunks.map { Int($0.size) }
        let signer = Array(parts.manifest[(parts.manifest.count - 96)..<(parts.manifest.count - 64)])
        print("release        \(Digest256(hashing: parts.manifest).hex)")
        print("product        \(m.product)")
        print("version        \(m.version)")
        print("created        \(Date(timeIntervalSince1970: TimeInterval(m.createdAt)))")
        print("image          \(m.imageSize) bytes, blake2b-256 \(m.imageHash.hex)")
        print(
            "chunks         \(m.chunks.count) (sizes \(sizes.min() ?? 0)-\(sizes.max() ?? 0), mean "
                + "\(m.imageSize / UInt64(max(1, m.chunks.count)))), \(compressed) bytes compressed "
                + "(\(m.imageSize == 0 ? 0 : compressed * 100 / m.imageSize)% of the image)")
        print("pieces         \(m.pieceCount) of \(m.pieceSize / 1024) KiB, each with its BLAKE2b-128 in the manifest")
        print("waves          \(m.policy.wavePercents.map { "\($0)%" }.joined(separator: ", "))")
        print("max failure    \(m.policy.maxFailurePercent)% of a wave pauses the rollout")
        print("health check   \(m.policy.healthTimeoutSeconds) s")
        print("downgrade      \(m.policy.allowDowngrade ? "allowed" : "refused")")
        print("signed by      \(signer.map { String(format: "%02x", $0) }.joined())")
        print("signature      not checked here; run: equicast release verify \(file) --pubkey KEY.pub")
    }
}

struct ReleaseVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a release file: signature, every chunk, and the image hash. Exit 1 if anything is wrong.")
    @Argument(help: "The .eqr file.") var file: String
    @Option(help: "A trusted release public key file (repeatable).") var pubkey: [String]

    func run() throws {
        guard !pubkey.isEmpty else { throw ValidationError("give at least one --pubkey") }
        let keys = try pubkey.map { try Ed25519.PublicKey(bytes: KeyFile.loadPublic($0, byteCount: 32)) }
        let bytes = try readWholeFile(file, what: "release file")
        do {
            let signed = try ReleaseFile.verify(bytes, trustedKeys: keys)
            let m = signed.manifest
            print(
                "OK \(file): \(m.product) version \(m.version), \(m.chunks.count) chunks verified, image hash matches; "
                    + "release \(signed.releaseID.hex)")
        } catch {
            print("REFUSED \(file): \(error)")
            throw ExitCode(1)
        }
    }
}
