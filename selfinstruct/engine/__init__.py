"""The engine any recipe drives: dispatch (asking models), the gate and its step base
(what is kept, and the funnel and rejected rows of what is not), the LLM review stage, and the
run state that ties them (`core.Engine`)."""
