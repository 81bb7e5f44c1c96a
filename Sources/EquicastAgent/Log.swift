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
    enum Kind {
        case joined
        case suspect
        case failed
        case left
        case recovered
    }

    static let window: UInt64 = 10_000
    static let linesMax = 20
    var windowStart: UInt64 = 0
    var lines = 0
    /// Changes held back in this window, and how many of them were failures.
    var held = 0
    var heldFailures = 0

    /// Whether a change of `kind` gets its own line (call `flush` first); if not, it is counted for the summary.
    mutating func admit(_ kind: Kind) -> Bool {
        if lines < ChurnLog.linesMax {
            lines += 1
            return true
        }
        held += 1
        if kind == .failed { heldFailures += 1 }
        return false
    }

    /// Ends the window once it is over, returning the summary line if anything was held back.
    mutating func flush(now: UInt64) -> (level: LogLevel, line: String)? {
        guard now >= windowStart + ChurnLog.window else { return nil }
        defer {
            windowStart = now
            lines = 0
            held = 0
            heldFailures = 0
        }
        guard held > 0 else { return nil }
        return (
            heldFailures > 0 ? .warning : .info,
            "membership: \(held) more changes (\(heldFailures) failures) in the last \((now - windowStart) / 1000) s, "
                + "not logged one by one"
        )
    }
}
