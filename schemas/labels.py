"""Every word a person reads about the wire data: Chinese (zh-CN) first, then English.

One source for the reading view, the dashboard, the CLI tables, the folder and mail
sinks and the plan-step refusals, so a field is called the same everywhere. A label is
a ``(zh, en)`` pair; :func:`text` picks one. ``tests/schemas/test_labels.py`` fails when
a kind, a body field (nested ones too), a literal value, a plan state or action, an
error code or a refusal has no label here.

Tables:

* :data:`KIND_LABELS` — the 12 item kinds.
* :data:`FIELD_LABELS` — ``model name → field → label`` for every body model of
  :mod:`schemas.kinds`; the same field name can mean different things in different
  kinds (``findings`` is 发现的问题 in a plan and 调研发现 in a research report).
* :data:`VALUE_LABELS` — ``field → literal value → label`` (``decision``, ``severity``,
  ``status``, ``action`` ...).
* :data:`REL_LABELS` — reference relations.
* :data:`STATE_LABELS`, :data:`STEP_LABELS`, :data:`STEP_VERBS` — the joint-inspection
  lifecycle (states; steps as nouns, for lists; as verb phrases, for sentences).
* :data:`REFUSAL_LABELS`, :data:`REFUSAL_MESSAGES` — why a plan step is refused: a short
  title per reason code, and the sentence templates the state machine fills in.
* :data:`ERROR_LABELS` — every :class:`schemas.errors.ErrorCode`.
* :data:`SECURITY_ADVICE` — for each code that is a security event: what it means and
  what the staff should do.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ERROR_LABELS",
    "FIELD_LABELS",
    "KIND_LABELS",
    "LANGS",
    "REFUSAL_LABELS",
    "REFUSAL_MESSAGES",
    "REL_LABELS",
    "SECURITY_ADVICE",
    "STATE_LABELS",
    "STEP_LABELS",
    "STEP_NEEDS",
    "STEP_VERBS",
    "VALUE_LABELS",
    "WHO_LABELS",
    "Label",
    "bilingual",
    "field_label",
    "kind_label",
    "text",
    "value_label",
]

Label = tuple[str, str]
"""``(Chinese, English)``."""

LANGS = ("zh", "en")


def text(label: Label, lang: str) -> str:
    """The ``lang`` half of ``label`` (Chinese for anything but ``"en"``)."""
    return label[1] if lang == "en" else label[0]


def bilingual(label: Label) -> str:
    """``中文 English`` for places that show both, such as CLI headers."""
    return f"{label[0]} {label[1]}"


KIND_LABELS: dict[str, Label] = {
    "case_study": ("典型案例", "Case study"),
    "inspection_plan": ("联合执法检查方案", "Joint inspection plan"),
    "lesson": ("经验做法", "Lesson"),
    "endorsement": ("会签", "Endorsement"),
    "retraction": ("撤回", "Retraction"),
    "agreement": ("协作协议", "Cooperation agreement"),
    "inspection_report": ("执法检查报告", "Inspection report"),
    "deliberation_opinion": ("审议意见", "Deliberation opinions"),
    "rectification_reply": ("研究处理情况报告", "Handling report"),
    "research_report": ("调研报告", "Research report"),
    "minutes": ("会议纪要", "Minutes"),
    "plan_update": ("方案进展", "Plan step"),
}

_CONTACTS: Label = ("联系人", "Contacts")
_PLAN: Label = ("所属方案", "Joint inspection plan")
_PARTICIPANTS: Label = ("参与单位", "Participating congresses")
_LAW: Label = ("检查的法律", "Law inspected")
_HANDLING_BODY: Label = ("承办机关", "Handling body")

FIELD_LABELS: dict[str, dict[str, Label]] = {
    "CaseStudy": {
        "background": ("背景", "Background"),
        "actions": ("主要做法", "What was done"),
        "results": ("成效", "Results"),
        "legal_basis": ("法律依据", "Legal basis"),
        "period": ("时间", "Period"),
        "participants": _PARTICIPANTS,
        "contacts": _CONTACTS,
        "lessons_learned": ("经验启示", "Lessons for others"),
    },
    "InspectionPlan": {
        "law": _LAW,
        "articles": ("重点条款", "Articles in focus"),
        "lead_site": ("牵头单位", "Lead"),
        "participating_sites": _PARTICIPANTS,
        "objectives": ("检查目的", "Objectives"),
        "scope": ("检查范围", "Scope"),
        "phases": ("检查步骤", "Phases"),
        "responsibilities": ("职责分工", "Who does what"),
        "findings": ("发现的问题", "Problems found"),
        "rectification": ("整改跟踪", "Rectification follow-up"),
        "contacts": _CONTACTS,
    },
    "Lesson": {
        "practice": ("做法", "Practice"),
        "conditions": ("背景与适用条件", "Setting and conditions"),
        "outcomes": ("成效", "Outcomes"),
        "applicability": ("可推广的情形", "Where it transfers"),
        "challenges": ("困难与不足", "Difficulties"),
        "contacts": _CONTACTS,
    },
    "Endorsement": {
        "plan": ("会签的方案", "Plan countersigned"),
        "decision": ("会签意见", "Decision"),
        "comment": ("意见说明", "Remarks"),
        "commitments": ("承诺事项", "Commitments"),
    },
    "Retraction": {
        "target": ("被撤回的条目", "Withdrawn item"),
        "reason": ("撤回理由", "Reason"),
    },
    "Agreement": {
        "parties": ("协议各方", "Parties"),
        "signed_on": ("签订日期", "Signed on"),
        "term": ("有效期", "Term"),
        "purpose": ("合作宗旨", "Purpose"),
        "areas": ("合作事项", "Areas of cooperation"),
        "mechanisms": ("工作机制", "Working mechanisms"),
        "obligations": ("各方职责", "What each party undertakes"),
        "contacts": _CONTACTS,
    },
    "InspectionReport": {
        "plan": _PLAN,
        "scope": ("报告类别", "Report type"),
        "law": _LAW,
        "period": ("检查时间", "Inspection period"),
        "inspected": ("检查对象", "Inspected"),
        "methods": ("检查方式", "Methods"),
        "overview": ("法律实施基本情况", "How the law is implemented"),
        "achievements": ("主要成效", "Achievements"),
        "findings": ("存在的问题", "Problems found"),
        "recommendations": ("意见建议", "Recommendations"),
    },
    "DeliberationOpinion": {
        "plan": _PLAN,
        "report": ("审议的报告", "Report deliberated"),
        "meeting": ("审议会议", "Meeting"),
        "deliberated_on": ("审议日期", "Deliberated on"),
        "handling_body": _HANDLING_BODY,
        "opinions": ("审议意见", "Opinions"),
        "deadline": ("研究处理情况报告期限", "Handling report due"),
        "addressed_sites": ("须报送研究处理情况的单位", "Congresses to report"),
    },
    "RectificationReply": {
        "plan": _PLAN,
        "opinion": ("答复的审议意见", "Opinions answered"),
        "handling_body": _HANDLING_BODY,
        "reported_on": ("报告日期", "Reported on"),
        "summary": ("总体情况", "Overall handling"),
        "items": ("逐条办理情况", "Handling of each opinion"),
        "pending": ("存在问题及下一步打算", "Outstanding issues and next steps"),
    },
    "ResearchReport": {
        "topic": ("调研课题", "Topic"),
        "period": ("调研时间", "Research period"),
        "methods": ("调研方式", "Methods"),
        "locations": ("调研地点", "Places visited"),
        "participants": _PARTICIPANTS,
        "findings": ("调研发现", "Findings"),
        "problems": ("存在问题", "Problems"),
        "recommendations": ("对策建议", "Recommendations"),
        "contacts": _CONTACTS,
    },
    "Minutes": {
        "type": ("类别", "Type"),
        "meeting": ("会议名称", "Meeting"),
        "held_on": ("日期", "Date"),
        "location": ("地点", "Place"),
        "attendees": ("参会单位", "Attending congresses"),
        "agenda": ("议题", "Agenda"),
        "decisions": ("议定事项", "Decisions"),
        "follow_up": ("分工落实", "Follow-up"),
    },
    "PlanUpdate": {
        "plan": _PLAN,
        "action": ("事项", "Step"),
        "effective_on": ("日期", "Effective on"),
        "note": ("说明", "Note"),
        "evidence": ("依据材料", "Supporting items"),
        "phase": ("阶段", "Phase"),
        "phase_status": ("阶段进展", "Phase status"),
        "vote": ("测评结果", "Vote"),
        "redo_deadline": ("重新报告期限", "New handling report due"),
    },
    # Nested records.
    "Contact": {
        "name": ("姓名", "Name"),
        "role": ("职务", "Position"),
        "phone": ("电话", "Phone"),
        "email": ("电子邮箱", "E-mail"),
    },
    "Period": {
        "start": ("开始日期", "From"),
        "end": ("结束日期", "Until"),
    },
    "Phase": {
        "name": ("阶段名称", "Phase"),
        "start": ("开始日期", "From"),
        "end": ("结束日期", "Until"),
        "activities": ("主要工作", "Activities"),
        "responsible_sites": ("责任单位", "Responsible congresses"),
    },
    "Responsibility": {
        "site": ("单位", "Congress"),
        "duties": ("职责", "Duties"),
    },
    "Finding": {
        "summary": ("问题描述", "Problem"),
        "severity": ("严重程度", "Severity"),
        "site": ("所在地区", "Where"),
    },
    "Rectification": {
        "issue": ("整改事项", "To rectify"),
        "responsible_body": ("责任单位", "Responsible body"),
        "deadline": ("整改期限", "Deadline"),
        "status": ("整改进展", "Progress"),
    },
    "MeasureTaken": {
        "opinion": ("审议意见或问题", "Opinion or problem"),
        "measures": ("整改措施", "Measures taken"),
        "status": ("办理进展", "Progress"),
        "completed_on": ("完成日期", "Completed on"),
    },
    "SatisfactionVote": {
        "meeting": ("测评会议", "Meeting"),
        "held_on": ("测评日期", "Date"),
        "members": ("组成人员", "Members"),
        "present": ("出席人数", "Present"),
        "satisfied": ("满意", "Satisfied"),
        "basically_satisfied": ("基本满意", "Basically satisfied"),
        "unsatisfied": ("不满意", "Unsatisfied"),
    },
}

VALUE_LABELS: dict[str, dict[str, Label]] = {
    "decision": {"endorse": ("同意", "Endorsed"), "decline": ("不同意", "Declined")},
    "severity": {
        "low": ("一般", "Minor"),
        "medium": ("较重", "Serious"),
        "high": ("严重", "Severe"),
    },
    "status": {
        "open": ("未整改", "Not yet rectified"),
        "in_progress": ("推进中", "In progress"),
        "done": ("已完成", "Done"),
        "planned": ("计划中", "Planned"),
    },
    "scope": {
        "joint": ("联合检查报告", "Joint report"),
        "local": ("本地检查情况报告", "Local report"),
    },
    "type": {
        "minutes": ("会议纪要", "Minutes"),
        "initiative": ("倡议书", "Initiative"),
    },
    "action": {
        "approve": ("批准方案", "Plan approved"),
        "start": ("启动实施", "Inspection started"),
        "phase_progress": ("阶段进展", "Phase progress"),
        "satisfaction_vote": ("满意度测评", "Satisfaction vote"),
        "close": ("办结", "Closed"),
    },
    "phase_status": {
        "started": ("已开始", "Started"),
        "completed": ("已完成", "Completed"),
    },
}

REL_LABELS: dict[str, Label] = {
    "follows": ("后续", "follows"),
    "endorses": ("会签", "endorses"),
    "retracts": ("撤回", "retracts"),
    "responds_to": ("答复", "responds to"),
    "updates": ("进展", "updates"),
    "cites": ("引用", "cites"),
    "reports_on": ("报告", "reports on"),
}

# ----------------------------------------------------------- joint inspection lifecycle

STATE_LABELS: dict[str, Label] = {
    "draft": ("草案", "draft"),
    "approved": ("已批准", "approved"),
    "in_progress": ("实施中", "in progress"),
    "reported": ("已报告", "reported"),
    "handed_over": ("已交办", "handed over"),
    "rectifying": ("整改中", "rectifying"),
    "evaluated": ("已测评", "evaluated"),
    "closed": ("已办结", "closed"),
}

STEP_LABELS: dict[str, Label] = {
    "endorse": ("会签同意", "Endorsed"),
    "decline": ("会签不同意", "Declined"),
    "approve": ("批准方案", "Plan approved"),
    "start": ("启动实施", "Inspection started"),
    "phase_progress": ("阶段进展", "Phase progress"),
    "satisfaction_vote": ("满意度测评", "Satisfaction vote"),
    "close": ("办结", "Closed"),
    "local_report": ("本地检查情况报告", "Local inspection report"),
    "joint_report": ("执法检查报告", "Joint inspection report"),
    "opinion": ("审议意见交办", "Deliberation opinions handed over"),
    "reply": ("研究处理情况报告", "Handling report"),
    "retraction": ("撤回方案", "Plan retracted"),
    "related": ("相关条目", "Related item"),
}
"""A plan step as a noun phrase (timelines, lists)."""

WHO_LABELS: dict[str, Label] = {
    "lead": ("牵头单位", "the lead"),
    "participant": (
        "参与单位（牵头单位除外），每家计第一次",
        "each participant (not the lead), first answer counts",
    ),
    "site": ("方案的任一单位，每家一份", "any congress of the plan, one each"),
    "phase": (
        "牵头单位或该阶段的责任单位",
        "the lead or the phase's responsible congresses",
    ),
    "addressed": (
        "审议意见要求报送的单位，每轮每家一份",
        "each congress the opinions address, one per round",
    ),
}
"""Who may sign a plan step (the ``who`` of the lifecycle table)."""

STEP_NEEDS: dict[str, Label] = {
    "endorse": ("承诺事项可选", "commitments optional"),
    "decline": ("不同意时不列承诺事项", "no commitments when declining"),
    "approve": ("—", "—"),
    "start": (
        "全部参与单位已会签同意，且无单位不同意",
        "every participant has endorsed, none declined",
    ),
    "phase_progress": (
        "写明阶段名称和进展（开始 / 完成）",
        "names the phase and its progress (started / completed)",
    ),
    "local_report": ("报告类别为本地检查情况报告", "report type local"),
    "joint_report": (
        "报告类别为联合检查报告；检查结束",
        "report type joint; ends the inspection",
    ),
    "opinion": (
        "写明承办机关、须报送的单位（默认方案全部单位）和报告期限",
        "names the handling body, the congresses to report (default: all) and the "
        "deadline",
    ),
    "reply": ("答复本方案当前的审议意见", "answers the plan's current opinions"),
    "satisfaction_vote": (
        "本轮须报送的单位都已报送；满意和基本满意票超过出席人数一半为通过，"
        "未通过须写明重新报告期限，方案回到“已交办”进入下一轮",
        "every addressed congress has reported this round; it passes when satisfied "
        "plus basically satisfied votes are more than half of those present; a failed "
        "vote gives a new deadline and returns the plan to handed over for the next round",
    ),
    "close": (
        "依据材料写明“回头看”调研报告",
        "evidence names the follow-up review (回头看) report",
    ),
}
"""What a plan step needs besides the right state and signer."""

STEP_VERBS: dict[str, Label] = {
    "endorse": ("会签方案", "countersign the plan"),
    "decline": ("会签方案", "countersign the plan"),
    "approve": ("批准方案", "approve the plan"),
    "start": ("启动实施", "start the inspection"),
    "phase_progress": ("报告阶段进展", "report the progress of a phase"),
    "satisfaction_vote": ("报送满意度测评结果", "record a satisfaction vote"),
    "close": ("办结方案", "close the plan"),
    "local_report": ("报送本地检查情况报告", "file a local inspection report"),
    "joint_report": ("报送执法检查报告", "file the joint inspection report"),
    "opinion": ("交办审议意见", "hand over deliberation opinions"),
    "reply": ("报送研究处理情况报告", "file a handling report"),
    "retraction": ("撤回方案", "retract the plan"),
    "related": ("引用方案", "refer to the plan"),
}
"""A plan step as a verb phrase, for sentences such as 只有牵头单位可以批准方案."""

REFUSAL_LABELS: dict[str, Label] = {
    "plan_unknown": ("本节点没有该方案", "plan not on this node"),
    "not_a_plan": ("引用的不是联合执法检查方案", "not a joint inspection plan"),
    "missing_ref": ("缺少对方案的引用", "reference to the plan missing"),
    "wrong_site": ("该单位无权进行此步骤", "not this congress's step"),
    "wrong_state": ("方案当前阶段不能进行此步骤", "not allowed in the plan's state"),
    "already_counted": ("已报送过，不重复计算", "already counted"),
    "precondition": ("前置条件未满足", "precondition not met"),
    "out_of_order": ("时间早于已生效的步骤", "earlier than steps already applied"),
    "retracted": ("方案已撤回", "plan retracted"),
    "audience_wider": ("可见范围超出方案", "audience wider than the plan's"),
}
"""A short title of each refusal reason code (``Refusal.reason``)."""

REFUSAL_MESSAGES: dict[str, Label] = {
    "audience_wider": (
        "方案步骤的可见范围不得超出方案本身：请把方案的可见范围复制到本条目。",
        "A plan step's audience must be its plan's (or narrower): copy the plan's "
        "audience into the step.",
    ),
    "plan_unknown": (
        "本节点还没有方案 {plan}：请先推送方案，或等方案同步到本节点后再试。",
        "Plan {plan} is not on this node yet: push the plan first, or retry once it "
        "has replicated here.",
    ),
    "not_a_plan": (
        "{plan} 是{kind}，不是联合执法检查方案。",
        "{plan} is a {kind_en}, not a joint inspection plan.",
    ),
    "missing_ref": (
        "条目须引用所属方案：请在 refs 中加入 rel 为“{rel}”、id 为 {plan} 的引用。",
        "The item must reference its plan: add a ref with rel {rel} and id {plan}.",
    ),
    "retract_not_author": (
        "只有方案的发布单位（{author}）可以撤回方案。",
        "Only the plan's author, {author}, can retract the plan.",
    ),
    "retracted": (
        "方案已被发布单位撤回，此后的步骤不再生效。",
        "The plan was retracted by its author; later steps no longer apply.",
    ),
    "not_a_party": (
        "{site}不是本方案的牵头单位或参与单位。",
        "{site} is neither the lead nor a participant of this plan.",
    ),
    "wrong_state": (
        "方案目前为“{state}”，不能{step}；此步骤须在方案为“{allowed}”时进行。",
        "The plan's state is {state_en}, so you cannot {step_en} now; that is possible only while its state is {allowed_en}.",
    ),
    "lead_only": (
        "只有牵头单位（{lead}）可以{step}，{site}不能。",
        "Only the lead, {lead}, can {step_en}; {site} cannot.",
    ),
    "lead_not_endorse": (
        "牵头单位不需要会签自己的方案。",
        "The lead, {lead}, does not countersign its own plan.",
    ),
    "endorsed_once": (
        "{site}已会签过本方案，每个参与单位只计第一次会签。",
        "{site} has already answered; each participant counts once (its first "
        "endorsement).",
    ),
    "no_such_phase": (
        "方案中没有名为“{phase}”的阶段（方案的阶段：{phases}）。",
        "The plan has no phase called {phase} (its phases: {phases}).",
    ),
    "not_phase_site": (
        "{site}不是阶段“{phase}”的责任单位，不能报告该阶段进展。",
        "{site} is not responsible for phase {phase} and cannot report its progress.",
    ),
    "phase_done": (
        "阶段“{phase}”{phase_status}，不需要再报告。",
        "Phase {phase} has already been reported as {phase_status_en}.",
    ),
    "declined": (
        "{sites}不同意本方案，不能启动实施；请修订方案后重新发布。",
        "{sites} declined the plan, so it cannot start; issue a revised plan.",
    ),
    "not_endorsed": (
        "{sites}尚未会签，不能启动实施。",
        "The inspection cannot start before {sites} countersign the plan.",
    ),
    "replies_missing": (
        "{sites}本轮尚未报送研究处理情况报告，报告齐全后才能进行满意度测评。",
        "This round's handling report is still missing from {sites}; the vote can be recorded once every report is in.",
    ),
    "local_report_once": (
        "{site}已报送过本地检查情况报告。",
        "{site} has already filed its local inspection report.",
    ),
    "not_plan_sites": (
        "{sites}不是本方案的单位，不能列为须报送研究处理情况的单位。",
        "Not congresses of this plan, so they cannot be asked for a handling report: {sites}.",
    ),
    "not_addressed": (
        "审议意见没有要求{site}报送研究处理情况（须报送的单位：{sites}）。",
        "The opinions do not ask {site} for a handling report (addressed: {sites}).",
    ),
    "wrong_opinion": (
        "该报告答复的审议意见 {opinion} 不是本方案当前的审议意见 {current}。",
        "It answers opinions {opinion}, not this plan's current opinions {current}.",
    ),
    "reply_once": (
        "{site}本轮（第{round}轮）已报送过研究处理情况报告。",
        "{site} has already filed its handling report in round {round}.",
    ),
    "out_of_order": (
        "签署时间 {created_at} 早于已生效的步骤 {later}，会使其失效；请检查签署电脑的时钟。",
        "Its signing time {created_at} is earlier than step {later}, which already "
        "applies and would stop applying; check the signing computer's clock.",
    ),
}
"""Sentence templates of refusals, by message code (filled by :mod:`exchange.core.plans`).

Placeholders ending in ``_en`` take the English label of the same value.
"""

# ------------------------------------------------------------------------ error codes

ERROR_LABELS: dict[str, Label] = {
    "bad_json": ("JSON 格式错误", "malformed JSON"),
    "invalid_utf8": ("文本不是有效的 UTF-8", "text is not valid UTF-8"),
    "duplicate_key": ("JSON 中有重复的字段", "duplicate key in JSON"),
    "too_deep": ("JSON 嵌套层数过多", "JSON nested too deeply"),
    "number_out_of_range": ("数字超出范围", "number out of range"),
    "float_not_allowed": ("不允许使用小数", "decimals are not allowed"),
    "too_large": ("内容过大", "too large"),
    "batch_too_large": ("一次推送的条目过多", "batch too large"),
    "schema_invalid": ("条目内容不符合格式要求", "item does not match the schema"),
    "unknown_kind": ("未知的条目类型", "unknown item kind"),
    "timestamp_in_future": ("创建时间晚于当前时间", "creation time in the future"),
    "audience_invalid": ("可见范围无效", "invalid audience"),
    "bad_signature": ("签名无法验证", "signature does not verify"),
    "unknown_key": ("未登记的签名密钥", "unknown signing key"),
    "revoked_key": ("签名密钥已吊销", "signing key revoked"),
    "key_not_yet_valid": ("签名密钥尚未生效", "signing key not yet valid"),
    "author_mismatch": ("签名密钥不属于作者单位", "key does not belong to the author"),
    "unsupported_algorithm": ("不支持的签名算法", "unsupported signature algorithm"),
    "unknown_site": ("未登记的单位", "unknown congress"),
    "unauthenticated": ("请求未签名", "request not authenticated"),
    "bad_request_signature": ("请求签名无效", "request signature invalid"),
    "digest_mismatch": ("请求内容与摘要不符", "request body does not match its digest"),
    "replayed_request": ("重复发送的请求（疑似重放）", "replayed request"),
    "signature_expired": ("请求签名已过期", "request signature expired"),
    "forbidden": ("无权访问", "forbidden"),
    "not_found": ("未找到", "not found"),
    "blob_hash_mismatch": ("附件内容与哈希不符", "attachment does not match its hash"),
    "blob_missing": ("附件尚未上传", "attachment not uploaded"),
    "bad_request": ("请求有误", "bad request"),
    "query_invalid": ("检索条件有误", "invalid search"),
    "conflict": ("与已有内容冲突", "conflict"),
    "rate_limited": ("请求过于频繁", "too many requests"),
    "request_timeout": ("请求发送过慢", "request too slow"),
    "proof_invalid": ("日志证明无法验证", "log proof does not verify"),
    "checkpoint_invalid": ("日志检查点无法验证", "log checkpoint does not verify"),
    "not_yet_integrated": ("尚未记入日志", "not yet in the log"),
    "roster_invalid": ("成员名册无效", "roster invalid"),
    "roster_stale": ("成员名册版本过旧", "roster out of date"),
    "not_home_node": ("该单位不在本节点推送", "not this congress's home node"),
    "invalid_transition": ("方案步骤不符合流程", "plan step not allowed"),
    "adapter_failed": ("适配器运行失败", "adapter failed"),
    "config_invalid": ("配置有误", "configuration invalid"),
    "database_unavailable": ("数据库暂时不可用", "database unavailable"),
    "node_unreachable": ("无法连接节点", "node unreachable"),
    "overloaded": ("节点繁忙，请稍后重试", "node busy; retry later"),
    "schema_too_new": ("数据库版本比程序新", "database schema newer than the program"),
    "internal": ("节点内部错误", "internal error"),
}
"""A short name of every :class:`schemas.errors.ErrorCode` value."""

SECURITY_ADVICE: dict[str, tuple[Label, Label]] = {
    "bad_signature": (
        (
            "收到签名无法验证的条目，可能被篡改或伪造",
            "an item whose signature does not "
            "verify: it may have been altered or forged",
        ),
        (
            "请联系该单位核实是否由其发出；如非本单位所为，请节点管理员检查密钥是否泄露。",
            "Ask the congress whether it sent it; if not, the node operator should check "
            "whether its key has leaked.",
        ),
    ),
    "unknown_key": (
        ("使用未登记的密钥签名", "signed with a key that is not registered"),
        (
            "如该单位新换了密钥，请节点管理员登记新密钥；否则可能是冒用。",
            "If the congress has a new key, the node operator registers it; otherwise "
            "someone may be impersonating it.",
        ),
    ),
    "revoked_key": (
        ("使用已吊销的密钥签名", "signed with a revoked key"),
        (
            "已吊销的密钥仍在使用：请确认该单位已换用新密钥，并检查旧密钥是否泄露。",
            "A revoked key is still in use: make sure the congress uses its new key and "
            "check whether the old one has leaked.",
        ),
    ),
    "author_mismatch": (
        ("以其他单位的名义签名", "signed in another congress's name"),
        (
            "密钥与署名单位不符，可能是冒用；请联系两个单位核实。",
            "The key does not belong to the named author, which may be impersonation; "
            "check with both congresses.",
        ),
    ),
    "key_not_yet_valid": (
        ("使用尚未生效的密钥签名", "signed with a key that is not valid yet"),
        (
            "请检查签署电脑的时钟，或等密钥生效后重新推送。",
            "Check the signing computer's clock, or push again once the key is valid.",
        ),
    ),
    "bad_request_signature": (
        ("请求签名无效", "a request with an invalid signature"),
        (
            "可能是配置的密钥不对或有人伪造请求；请联系该单位核实。",
            "The configured key may be wrong, or the request forged; check with the "
            "congress.",
        ),
    ),
    "replayed_request": (
        ("同一请求被重复发送（疑似重放）", "the same request sent twice (a replay?)"),
        (
            "偶发可能是网络重试；频繁出现请节点管理员排查。",
            "Once may be a network retry; if it recurs, the node operator investigates.",
        ),
    ),
    "not_home_node": (
        (
            "单位从非所属节点推送",
            "a congress pushed through a node that is not its home node",
        ),
        (
            "请确认该单位的节点配置是否正确。",
            "Check that the congress's node settings are right.",
        ),
    ),
    "checkpoint_invalid": (
        (
            "对等节点的日志检查点无法验证",
            "a peer node's log checkpoint does not verify",
        ),
        (
            "该节点的日志可能被篡改或回滚；请节点管理员立即联系对方节点。",
            "That node's log may have been altered or rolled back; the node operator "
            "contacts it at once.",
        ),
    ),
    "proof_invalid": (
        ("日志证明无法验证", "a log proof does not verify"),
        (
            "请节点管理员检查对等节点的日志是否一致。",
            "The node operator checks that the peers' logs agree.",
        ),
    ),
    "roster_invalid": (
        ("收到无效的成员名册", "an invalid roster"),
        (
            "名册签名或内容有误，未被采用；请节点管理员核实名册来源。",
            "The roster was not applied; the node operator checks where it came from.",
        ),
    ),
}
"""For each security-event code: (what happened, what to do)."""


# ---------------------------------------------------------------------------- lookups


def kind_label(kind: str, lang: str = "zh") -> str:
    """The kind's name in ``lang`` (the raw kind only for a kind unknown here)."""
    label = KIND_LABELS.get(kind)
    return text(label, lang) if label else kind


def field_label(model: str, name: str, lang: str = "zh") -> str:
    """The label of field ``name`` of body model ``model`` (e.g. ``"Lesson"``)."""
    label = FIELD_LABELS.get(model, {}).get(name)
    return text(label, lang) if label else name


def value_label(
    name: str, value: str, lang: str = "zh", table: Mapping[str, Label] | None = None
) -> str:
    """The label of literal ``value`` of field ``name`` (the value if unknown)."""
    label = (table if table is not None else VALUE_LABELS.get(name, {})).get(value)
    return text(label, lang) if label else value
