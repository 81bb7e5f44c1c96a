import EquicastCore

/// Log levels. The default, info, logs state changes (members joining and failing, syncs failing), never one
/// line per packet; debug adds refused frames.
public enum LogLevel: Int, Comparable, Sendable {
    case error = 0
    case warning = 1
    case info = 2
    case debug = 3

    public init?(name: String) {
        switch name.asciiLowercased {
        case "error": self = .error
        case "warning", "warn": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    /// syslog priority prefix, which journald reads from a unit's stderr (sd-daemon(3)).
    var prefix: String {
        switch self {
        case .error: return "<3>"
        case .warning: return "<4>"
        case .info: return "<6>"
        case .debug: return "<7>"
        }
    }
}

/// Lines to stderr with a syslog priority prefix; journald turns them into levelled entries.
public struct Logger {
    public var level: LogLevel

    public init(level: LogLevel) { self.level = level }

    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        if level <= self.level { printError(level.prefix + message()) }
    }
}

/// Membership changes as log lines, at most `linesMax` in any `window`: beyond that they are counted, and one
/// line at the window's end says how many were not logged one by one, and how many of them were failures. A
/// fleet-wide event (a mass join, a site losing power) or a peer announcing members in bulk then costs a few
/// lines, not one per member.
struct ChurnLog {
    enum Kind: Int {
        case joined = 0
        case suspect = 1
        case failed = 2
        case left = 3
        case recovered = 4
    }

    static let window: UInt64 = 10_000
    static let linesMax = 20
    var windowStart: UInt64 = 0
    var lines = 0
    var held = [0, 0, 0, 0, 0]

    /// Whether a change of `kind` gets its own line (call `flush` first); if not, it is counted for the summary.
    mutating func admit(_ kind: Kind) -> Bool {
        if lines < ChurnLog.linesMax {
            lines += 1
            return true
        }
        held[kind.rawValue] += 1
        return false
    }

    /// Ends the window once it is over, returning the summary line if anything was held back.
    mutating func flush(now: UInt64) -> (level: LogLevel, line: String)? {
        guard now >= windowStart + ChurnLog.window else { return nil }
        defer {
            windowStart = now
            lines = 0
            held = [0, 0, 0, 0, 0]
        }
        let total = held[0] + held[1] + held[2] + held[3] + held[4]
        guard total > 0 else { return nil }
        let failed = held[Kind.failed.rawValue]
        return (
            failed > 0 ? .warning : .info,
            "membership: \(total) more changes (\(failed) failures) in the last \((now - windowStart) / 1000) s, not "
                + "logged one by one"
        )
    }
}
