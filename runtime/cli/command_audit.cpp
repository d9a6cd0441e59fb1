// mitigate audit verify  -- check the hash chain of the audit log
// mitigate audit tail    -- print the most recent audit records
#include <iostream>

#include <CLI/CLI.hpp>

#include "runtime/cli/command_context.h"
#include "runtime/config/config.h"
#include "runtime/core/time_format.h"
#include "runtime/store/sqlite_store.h"

namespace mitigate {
namespace {

struct AuditOptions {
    std::string database;     // --db; empty: store.path from the configuration
    std::string expect_head;  // --expect-head SEQUENCE:HASH
    std::size_t count = 20;   // tail -n
    OutputFormat output = OutputFormat::text;
};

std::unique_ptr<Store> open_for_reading(const GlobalOptions& global, const AuditOptions& options) {
    std::filesystem::path path = options.database;
    if (path.empty()) {
        const auto config = load_config_for_command(global);
        if (!config) {
            return nullptr;
        }
        path = config->store.path;
    }
    SqliteStoreOptions store_options;
    store_options.read_only = true;
    return open_sqlite_store(path, store_options);
}

// "42:3fa2..." -> {42, "3fa2..."}
std::optional<AuditHead> parse_head(const std::string& text) {
    const auto colon = text.find(':');
    if (colon == std::string::npos || colon == 0) {
        return std::nullopt;
    }
    AuditHead head;
    try {
        std::size_t used = 0;
        head.sequence = std::stoll(text.substr(0, colon), &used);
        if (used != colon || head.sequence < 1) {
            return std::nullopt;
        }
    } catch (const std::exception&) {
        return std::nullopt;
    }
    head.hash = text.substr(colon + 1);
    if (head.hash.size() != 64) {
        return std::nullopt;
    }
    return head;
}

int run_verify(const GlobalOptions& global, const AuditOptions& options) {
    std::optional<AuditHead> expected;
    if (!options.expect_head.empty()) {
        expected = parse_head(options.expect_head);
        if (!expected) {
            std::cerr << "mitigate: --expect-head must be SEQUENCE:HASH as printed by an earlier "
                         "`mitigate audit verify`\n";
            return exit_usage;
        }
    }
    const auto store = open_for_reading(global, options);
    if (!store) {
        return exit_failure;
    }
    AuditChainVerifier verifier = store->verify_audit_chain();
    bool intact = verifier.intact();
    std::optional<std::int64_t> bad_record = verifier.first_bad_sequence();
    std::string problem = verifier.problem();
    if (intact && expected) {
        // The saved head must still be part of the chain, unchanged.
        const auto records = store->audit_records(expected->sequence - 1, 1);
        if (records.empty() || records.front().hash != expected->hash) {
            intact = false;
            bad_record = expected->sequence;
            problem = records.empty()
                          ? "record " + std::to_string(expected->sequence) +
                                " of the expected head is gone: the log was truncated"
                          : "record " + std::to_string(expected->sequence) +
                                " no longer has the expected hash: the log was rewritten";
        }
    }
    const AuditHead& head = verifier.head();
    if (options.output == OutputFormat::json) {
        nlohmann::json report{{"intact", intact}, {"records", verifier.records()}};
        if (intact) {
            report["head"] = {{"sequence", head.sequence}, {"hash", head.hash}};
        } else {
            report["first_bad_record"] = *bad_record;
            report["problem"] = problem;
        }
        std::cout << report.dump(2) << "\n";
    } else if (intact) {
        std::cout << "audit chain intact: " << verifier.records() << " record"
                  << (verifier.records() == 1 ? "" : "s") << ", head " << head.sequence << ":"
                  << head.hash << "\n";
    } else {
        std::cout << "audit chain BROKEN at record " << *bad_record << ": " << problem << "\n";
    }
    return intact ? exit_ok : exit_failure;
}

int run_tail(const GlobalOptions& global, const AuditOptions& options) {
    const auto store = open_for_reading(global, options);
    if (!store) {
        return exit_failure;
    }
    for (const AuditRecord& record : store->audit_tail(options.count)) {
        if (options.output == OutputFormat::json) {
            std::cout << nlohmann::json(record).dump() << "\n";
        } else {
            std::cout << record.sequence << "  " << format_rfc3339(record.at) << "  "
                      << record.actor << "  " << record.event
                      << (record.subject.empty() ? "" : "  " + record.subject) << "  "
                      << record.details.dump() << "\n";
        }
    }
    return exit_ok;
}

void add_database_option(CLI::App& command, AuditOptions& options) {
    command.add_option("--db", options.database,
                       "Store file (default: store.path of the configuration)");
}

}  // namespace

void register_audit_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
    CLI::App* audit = app.add_subcommand("audit", "Inspect the tamper-evident audit log");
    audit->require_subcommand(1);
    auto options = std::make_shared<AuditOptions>();

    CLI::App* verify = audit->add_subcommand(
        "verify",
        "Check every link of the audit log's hash chain and its recorded head. Exit 0 and\n"
        "print the record count and head when intact; exit 1 naming the first bad record on\n"
        "any edit, deletion, insertion or reordering. Opens the store read-only.");
    add_database_option(*verify, *options);
    verify->add_option("--expect-head", options->expect_head,
                       "SEQUENCE:HASH saved from an earlier verify; fails if that record is "
                       "gone or changed (catches a rewrite of the whole tail)");
    add_output_option(*verify, options->output);
    verify->callback([&global, options, &exit_code] { exit_code = run_verify(global, *options); });

    CLI::App* tail = audit->add_subcommand(
        "tail", "Print the most recent audit records, oldest first. Opens the store read-only.");
    add_database_option(*tail, *options);
    tail->add_option("-n,--lines", options->count, "How many records")
        ->check(CLI::PositiveNumber)
        ->default_val(20);
    add_output_option(*tail, options->output);
    tail->callback([&global, options, &exit_code] { exit_code = run_tail(global, *options); });
}

}  // namespace mitigate
