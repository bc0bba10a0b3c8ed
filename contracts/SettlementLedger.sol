// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title SettlementLedger: Corridor's on-chain record of settlement batches
/// @notice Holds each registered participant's prefunded settlement balance per currency,
/// applies the multilateral net positions of every settlement batch to those balances, and
/// records each batch's header (Merkle roots of its transfers and of the balances it touched,
/// link to the previous batch) so that anyone can check a transfer's inclusion against it.
/// @dev Conventions that every caller and auditor relies on:
///  - Currencies are `bytes3` holding the ISO 4217 alphabetic code in ASCII, e.g. "USD" is
///    0x555344. Only codes of three upper-case letters A-Z are accepted.
///  - Amounts are integers in the currency's minor units (ISO 4217 exponent: USD cents, JPY
///    yen); never fractions. A single amount is bounded by `AMOUNT_MAX` (int64's maximum),
///    so every amount also fits a signed 64-bit SQL column.
///  - Batches are numbered 1, 2, 3, ... and settled strictly in order. Batch 1's previous
///    batch hash is bytes32(0).
///  - positionsHash = keccak256(abi.encode(positions)), with `positions` the NetPosition[]
///    exactly as passed to `settleBatch` (ABI type `(address,bytes3,int256)[]`).
///  - batchHash = keccak256(abi.encode(uint256 number, bytes32 transfersRoot,
///    bytes32 balancesRoot, bytes32 prevBatchHash, uint256 transferCount,
///    bytes32 positionsHash)).
///  - Net positions must be sorted strictly ascending by (currency, participant), which
///    makes them unique and their hash canonical.
contract SettlementLedger is AccessControl, Pausable {
    /// @notice Role allowed to settle batches.
    bytes32 public constant SETTLER_ROLE = keccak256("SETTLER_ROLE");

    /// @notice Role allowed to deposit into and withdraw from settlement balances.
    bytes32 public constant FUNDER_ROLE = keccak256("FUNDER_ROLE");

    /// @notice Largest absolute amount, in minor units, of one deposit, withdrawal or net
    /// position (int64's maximum, 9_223_372_036_854_775_807).
    int256 public constant AMOUNT_MAX = type(int64).max;

    /// @notice Largest number of net positions in one batch; bounds the gas of `settleBatch`.
    uint256 public constant POSITIONS_MAX = 1000;

    /// @notice One participant's signed net position in one currency for a batch.
    /// @param participant the registered participant's address
    /// @param currency ISO 4217 alphabetic code as ASCII bytes, e.g. "USD"
    /// @param amountMinor signed amount in minor units: positive receives, negative pays
    struct NetPosition {
        address participant;
        bytes3 currency;
        int256 amountMinor;
    }

    /// @notice The stored header of a settled batch.
    /// @param number the batch number (1-based)
    /// @param transferCount number of transfers in the batch (leaves of `transfersRoot`)
    /// @param blockNumber block in which the batch was settled
    /// @param timestamp timestamp of that block
    /// @param transfersRoot StandardMerkleTree root over the batch's transfers
    /// @param balancesRoot StandardMerkleTree root over the balances the batch touched
    /// @param prevBatchHash `batchHash` of the previous batch, bytes32(0) for batch 1
    /// @param positionsHash keccak256(abi.encode(positions))
    /// @param batchHash the batch's hash, see the contract's documentation
    struct BatchHeader {
        uint64 number;
        uint32 transferCount;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 transfersRoot;
        bytes32 balancesRoot;
        bytes32 prevBatchHash;
        bytes32 positionsHash;
        bytes32 batchHash;
    }

    mapping(address participant => bool registered) private _registered;
    mapping(address participant => mapping(bytes3 currency => uint256 balanceMinor))
        private _balances;
    mapping(bytes32 ref => bool used) private _usedReferences;
    mapping(uint256 number => BatchHeader header) private _batches;
    uint64 private _lastBatchNumber;
    bytes32 private _lastBatchHash;

    /// @notice A participant was registered.
    /// @param participant the participant's address
    event ParticipantRegistered(address indexed participant);

    /// @notice A funder deposited into a participant's settlement balance.
    /// @param participant the participant credited
    /// @param currency ISO 4217 code
    /// @param amountMinor the amount deposited, minor units
    /// @param balanceMinor the balance after the deposit, minor units
    /// @param ref the funder's unique reference for this movement
    event Deposited(
        address indexed participant,
        bytes3 indexed currency,
        uint256 amountMinor,
        uint256 balanceMinor,
        bytes32 indexed ref
    );

    /// @notice A funder withdrew from a participant's settlement balance.
    /// @param participant the participant debited
    /// @param currency ISO 4217 code
    /// @param amountMinor the amount withdrawn, minor units
    /// @param balanceMinor the balance after the withdrawal, minor units
    /// @param ref the funder's unique reference for this movement
    event Withdrawn(
        address indexed participant,
        bytes3 indexed currency,
        uint256 amountMinor,
        uint256 balanceMinor,
        bytes32 indexed ref
    );

    /// @notice A batch was settled. Together with the log's block this is the whole header
    /// and the net positions, so an auditor can rebuild both from logs alone.
    /// @param number the batch number
    /// @param batchHash the batch's hash
    /// @param prevBatchHash the previous batch's hash (bytes32(0) for batch 1)
    /// @param transfersRoot Merkle root of the batch's transfers
    /// @param balancesRoot Merkle root of the balances the batch touched
    /// @param transferCount number of transfers in the batch
    /// @param positionsHash keccak256(abi.encode(positions))
    /// @param timestamp the block's timestamp
    /// @param positions the net positions applied, in the order given
    event BatchSettled(
        uint256 indexed number,
        bytes32 indexed batchHash,
        bytes32 indexed prevBatchHash,
        bytes32 transfersRoot,
        bytes32 balancesRoot,
        uint256 transferCount,
        bytes32 positionsHash,
        uint256 timestamp,
        NetPosition[] positions
    );

    /// @notice An address given to the constructor or to `registerParticipant` is zero.
    error SettlementLedgerZeroAddress();

    /// @notice The participant is already registered.
    /// @param participant the address given
    error SettlementLedgerParticipantAlreadyRegistered(address participant);

    /// @notice The participant is not registered.
    /// @param participant the address given
    error SettlementLedgerUnknownParticipant(address participant);

    /// @notice The currency is not three upper-case ASCII letters.
    /// @param currency the value given
    error SettlementLedgerInvalidCurrency(bytes3 currency);

    /// @notice A deposit or withdrawal amount is zero or larger than `AMOUNT_MAX`.
    /// @param amountMinor the amount given
    error SettlementLedgerInvalidAmount(uint256 amountMinor);

    /// @notice The reference of a deposit or withdrawal is zero or was used before.
    /// @param ref the reference given
    error SettlementLedgerInvalidReference(bytes32 ref);

    /// @notice A withdrawal exceeds the settlement balance.
    /// @param participant the participant
    /// @param currency the currency
    /// @param balanceMinor the current balance
    /// @param amountMinor the amount asked for
    error SettlementLedgerInsufficientBalance(
        address participant, bytes3 currency, uint256 balanceMinor, uint256 amountMinor
    );

    /// @notice The batch number is not the next one.
    /// @param expected the next batch number
    /// @param given the batch number submitted
    error SettlementLedgerWrongBatchNumber(uint256 expected, uint256 given);

    /// @notice The previous batch hash does not match the last settled batch's hash.
    /// @param expected the last settled batch's hash (bytes32(0) before batch 1)
    /// @param given the hash submitted
    error SettlementLedgerWrongPrevBatchHash(bytes32 expected, bytes32 given);

    /// @notice The batch has more than `POSITIONS_MAX` net positions.
    /// @param count the number of positions submitted
    /// @param max `POSITIONS_MAX`
    error SettlementLedgerTooManyPositions(uint256 count, uint256 max);

    /// @notice Net positions are not sorted strictly ascending by (currency, participant).
    /// @param index the first position out of order (or a duplicate)
    error SettlementLedgerPositionsNotSorted(uint256 index);

    /// @notice A net position's absolute amount is larger than `AMOUNT_MAX`.
    /// @param index the position's index
    /// @param amountMinor its amount
    error SettlementLedgerPositionOutOfRange(uint256 index, int256 amountMinor);

    /// @notice The net positions of one currency do not sum to zero.
    /// @param currency the currency
    /// @param sumMinor the sum of its positions
    error SettlementLedgerNonZeroSum(bytes3 currency, int256 sumMinor);

    /// @notice Applying a net position would make a settlement balance negative.
    /// @param index the position's index
    /// @param participant the participant
    /// @param currency the currency
    /// @param balanceMinor the balance before the position
    /// @param amountMinor the position's (negative) amount
    error SettlementLedgerNegativeBalance(
        uint256 index, address participant, bytes3 currency, uint256 balanceMinor, int256 amountMinor
    );

    /// @notice No batch with this number has been settled.
    /// @param number the batch number asked for
    error SettlementLedgerUnknownBatch(uint256 number);

    /// @notice Deploys the ledger and grants its three roles.
    /// @param admin gets DEFAULT_ADMIN_ROLE: registers participants, pauses, manages roles
    /// @param settler gets SETTLER_ROLE
    /// @param funder gets FUNDER_ROLE
    constructor(address admin, address settler, address funder) {
        if (admin == address(0) || settler == address(0) || funder == address(0)) {
            revert SettlementLedgerZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(SETTLER_ROLE, settler);
        _grantRole(FUNDER_ROLE, funder);
    }

    // ---------------------------------------------------------------- administration

    /// @notice Registers a participant so it can be funded and hold net positions.
    /// @dev Only DEFAULT_ADMIN_ROLE. Allowed while paused: it moves no money.
    /// @param participant the participant's address
    function registerParticipant(address participant) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (participant == address(0)) revert SettlementLedgerZeroAddress();
        if (_registered[participant]) {
            revert SettlementLedgerParticipantAlreadyRegistered(participant);
        }
        _registered[participant] = true;
        emit ParticipantRegistered(participant);
    }

    /// @notice Stops deposits, withdrawals and settlement (incident response).
    /// @dev Only DEFAULT_ADMIN_ROLE; reverts with EnforcedPause if already paused.
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    /// @notice Resumes deposits, withdrawals and settlement.
    /// @dev Only DEFAULT_ADMIN_ROLE; reverts with ExpectedPause if not paused.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- funding

    /// @notice Credits a participant's settlement balance (the participant prefunded it).
    /// @dev Only FUNDER_ROLE, not while paused. A reference is accepted once, so a retried
    /// deposit never credits twice.
    /// @param participant a registered participant
    /// @param currency ISO 4217 code, e.g. "USD"
    /// @param amountMinor amount in minor units, 1..AMOUNT_MAX
    /// @param ref the funder's unique, non-zero reference for this movement
    function deposit(address participant, bytes3 currency, uint256 amountMinor, bytes32 ref)
        external
        onlyRole(FUNDER_ROLE)
        whenNotPaused
    {
        _checkMovement(participant, currency, amountMinor, ref);
        uint256 balance = _balances[participant][currency] + amountMinor;
        _balances[participant][currency] = balance;
        _usedReferences[ref] = true;
        emit Deposited(participant, currency, amountMinor, balance, ref);
    }

    /// @notice Debits a participant's settlement balance (funds returned to the participant).
    /// @dev Only FUNDER_ROLE, not while paused. A reference is accepted once.
    /// @param participant a registered participant
    /// @param currency ISO 4217 code, e.g. "USD"
    /// @param amountMinor amount in minor units, 1..AMOUNT_MAX, at most the balance
    /// @param ref the funder's unique, non-zero reference for this movement
    function withdraw(address participant, bytes3 currency, uint256 amountMinor, bytes32 ref)
        external
        onlyRole(FUNDER_ROLE)
        whenNotPaused
    {
        _checkMovement(participant, currency, amountMinor, ref);
        uint256 current = _balances[participant][currency];
        if (current < amountMinor) {
            revert SettlementLedgerInsufficientBalance(participant, currency, current, amountMinor);
        }
        uint256 balance = current - amountMinor;
        _balances[participant][currency] = balance;
        _usedReferences[ref] = true;
        emit Withdrawn(participant, currency, amountMinor, balance, ref);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice Settles the next batch: checks and applies its net positions and records its
    /// header.
    /// @dev Only SETTLER_ROLE, not while paused. Reverts unless `number` is the next batch
    /// number, `prevBatchHash` is the last batch's hash, positions are sorted strictly by
    /// (currency, participant), belong to registered participants, sum to zero per currency
    /// and leave no settlement balance negative.
    /// @param number the batch number, exactly `lastBatchNumber() + 1`
    /// @param transfersRoot StandardMerkleTree root over the batch's transfers
    /// @param balancesRoot StandardMerkleTree root over the balances the batch touched
    /// @param prevBatchHash the previous batch's `batchHash`, bytes32(0) for batch 1
    /// @param transferCount number of transfers in the batch
    /// @param positions net positions sorted by (currency, participant), at most POSITIONS_MAX
    /// @return batchHash the new batch's hash
    function settleBatch(
        uint64 number,
        bytes32 transfersRoot,
        bytes32 balancesRoot,
        bytes32 prevBatchHash,
        uint32 transferCount,
        NetPosition[] calldata positions
    ) external onlyRole(SETTLER_ROLE) whenNotPaused returns (bytes32 batchHash) {
        uint64 expected = _lastBatchNumber + 1;
        if (number != expected) revert SettlementLedgerWrongBatchNumber(expected, number);
        if (prevBatchHash != _lastBatchHash) {
            revert SettlementLedgerWrongPrevBatchHash(_lastBatchHash, prevBatchHash);
        }
        uint256 count = positions.length;
        if (count > POSITIONS_MAX) revert SettlementLedgerTooManyPositions(count, POSITIONS_MAX);

        _applyPositions(positions);

        bytes32 positionsHash = keccak256(abi.encode(positions));
        batchHash = keccak256(
            abi.encode(
                uint256(number),
                transfersRoot,
                balancesRoot,
                prevBatchHash,
                uint256(transferCount),
                positionsHash
            )
        );
        _batches[number] = BatchHeader({
            number: number,
            transferCount: transferCount,
            blockNumber: uint64(block.number),
            timestamp: uint64(block.timestamp),
            transfersRoot: transfersRoot,
            balancesRoot: balancesRoot,
            prevBatchHash: prevBatchHash,
            positionsHash: positionsHash,
            batchHash: batchHash
        });
        _lastBatchNumber = number;
        _lastBatchHash = batchHash;
        emit BatchSettled(
            number,
            batchHash,
            prevBatchHash,
            transfersRoot,
            balancesRoot,
            transferCount,
            positionsHash,
            block.timestamp,
            positions
        );
    }

    // ---------------------------------------------------------------- views

    /// @notice The number of the last settled batch, 0 before the first.
    /// @return number the last batch number
    function lastBatchNumber() external view returns (uint256 number) {
        return _lastBatchNumber;
    }

    /// @notice The hash of the last settled batch, bytes32(0) before the first: the
    /// `prevBatchHash` the next batch must carry.
    /// @return batchHash the last batch's hash
    function lastBatchHash() external view returns (bytes32 batchHash) {
        return _lastBatchHash;
    }

    /// @notice The header of a settled batch; reverts with SettlementLedgerUnknownBatch for a
    /// number not settled yet.
    /// @param number the batch number
    /// @return header the stored header
    function batchHeader(uint256 number) external view returns (BatchHeader memory header) {
        header = _batches[number];
        if (header.number == 0) revert SettlementLedgerUnknownBatch(number);
    }

    /// @notice A participant's settlement balance in a currency, minor units.
    /// @param participant the participant's address
    /// @param currency ISO 4217 code
    /// @return balanceMinor the balance
    function settlementBalance(address participant, bytes3 currency)
        external
        view
        returns (uint256 balanceMinor)
    {
        return _balances[participant][currency];
    }

    /// @notice Whether an address is a registered participant.
    /// @param participant the address
    /// @return registered true when registered
    function isParticipant(address participant) external view returns (bool registered) {
        return _registered[participant];
    }

    /// @notice Whether a deposit or withdrawal reference has been used.
    /// @param ref the reference
    /// @return used true when a movement with this reference was applied
    function isReferenceUsed(bytes32 ref) external view returns (bool used) {
        return _usedReferences[ref];
    }

    /// @notice Checks that a transfer leaf is included in a settled batch's transfers root.
    /// @dev `leaf` is the StandardMerkleTree leaf, already hashed twice:
    /// keccak256(bytes.concat(keccak256(abi.encode(values)))). Reverts with
    /// SettlementLedgerUnknownBatch for a batch not settled yet.
    /// @param number the batch number
    /// @param leaf the transfer's leaf hash
    /// @param proof the sibling hashes from the leaf to the root (sorted-pair hashing)
    /// @return included true when the proof links the leaf to the batch's transfersRoot
    function verifyTransfer(uint256 number, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool included)
    {
        BatchHeader storage header = _batches[number];
        if (header.number == 0) revert SettlementLedgerUnknownBatch(number);
        return MerkleProof.verifyCalldata(proof, header.transfersRoot, leaf);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Checks and applies the positions. Sorting by (currency, participant) groups each
    /// currency, so the zero-sum check needs one running sum, and makes each pair unique.
    function _applyPositions(NetPosition[] calldata positions) private {
        uint256 count = positions.length;
        uint256 previousKey = 0;
        bytes3 groupCurrency = 0;
        int256 sum = 0;
        for (uint256 i = 0; i < count; ++i) {
            NetPosition calldata position = positions[i];
            bytes3 currency = position.currency;
            address participant = position.participant;
            uint256 key = (uint256(uint24(currency)) << 160) | uint256(uint160(participant));
            if (i > 0) {
                if (key <= previousKey) revert SettlementLedgerPositionsNotSorted(i);
                if (currency != groupCurrency) {
                    if (sum != 0) revert SettlementLedgerNonZeroSum(groupCurrency, sum);
                    sum = 0;
                }
            }
            previousKey = key;
            groupCurrency = currency;

            if (!_registered[participant]) revert SettlementLedgerUnknownParticipant(participant);
            int256 amount = position.amountMinor;
            if (amount > AMOUNT_MAX || amount < -AMOUNT_MAX) {
                revert SettlementLedgerPositionOutOfRange(i, amount);
            }
            sum += amount;
            if (amount == 0) continue;
            uint256 balance = _balances[participant][currency];
            if (amount < 0) {
                uint256 debit = uint256(-amount);
                if (balance < debit) {
                    revert SettlementLedgerNegativeBalance(i, participant, currency, balance, amount);
                }
                _balances[participant][currency] = balance - debit;
            } else {
                _balances[participant][currency] = balance + uint256(amount);
            }
        }
        if (sum != 0) revert SettlementLedgerNonZeroSum(groupCurrency, sum);
    }

    /// @dev The checks shared by deposits and withdrawals.
    function _checkMovement(address participant, bytes3 currency, uint256 amountMinor, bytes32 ref)
        private
        view
    {
        if (!_registered[participant]) revert SettlementLedgerUnknownParticipant(participant);
        if (!_isCurrencyCode(currency)) revert SettlementLedgerInvalidCurrency(currency);
        if (amountMinor == 0 || amountMinor > uint256(AMOUNT_MAX)) {
            revert SettlementLedgerInvalidAmount(amountMinor);
        }
        if (ref == bytes32(0) || _usedReferences[ref]) {
            revert SettlementLedgerInvalidReference(ref);
        }
    }

    /// @dev True for three upper-case ASCII letters.
    function _isCurrencyCode(bytes3 currency) private pure returns (bool) {
        for (uint256 i = 0; i < 3; ++i) {
            bytes1 c = currency[i];
            if (c < 0x41 || c > 0x5A) return false;
        }
        return true;
    }
}
