import ArgumentParser
import EquicastCrypto
import EquicastPosix
import Foundation

/// equicast: the operator's tool. It talks to the local agent through its control socket and manages keys.
@main
struct EquicastCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "equicast",
        abstract: "Operate an Equicast fleet: members, status, keys, simulation.",
        subcommands: [Members.self, Status.self, Keygen.self, Sim.self])
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
func printTable(_ text: String) {
    let rows = text.split(separator: "\n").map {
        $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
    }
    guard let width = rows.map(\.count).max() else { return }
    var widths = [Int](repeating: 0, count: width)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    for row in rows {
        print(
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  "))
    }
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
