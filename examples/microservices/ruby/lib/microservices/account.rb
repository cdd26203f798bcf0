# frozen_string_literal: true

module Microservices
  # The account that `create_user_account` made, as the steps after it read
  # it: the same fields, and the same refusal of a result without them, as
  # the Rust handlers' `Account`.
  Account = Struct.new(:user_id, :email, :name, :plan, keyword_init: true) do
    # The account in the result of `create_user_account`. Raises
    # TaskerWorker::PermanentError (`invalid_input`) if the step's message
    # does not carry that result, or it lacks a field or mistypes one.
    def self.of(context)
      result = context.get_dependency_result(CREATE_USER_ACCOUNT)
      refuse("it is #{TaskerWorker::Messages.describe(result)}, not a JSON object") unless result.is_a?(Hash)

      new(user_id: text(result, 'user_id'), email: text(result, 'email'),
          name: text(result, 'name', optional: true), plan: text(result, 'plan'))
    end

    def self.text(result, key, optional: false)
      value = result[key]
      return value if value.is_a?(String) || (value.nil? && optional)

      refuse(value.nil? ? "missing field `#{key}`" : "field `#{key}` is not a string")
    end

    def self.refuse(problem)
      raise TaskerWorker::PermanentError.new(
        "the result of \"#{CREATE_USER_ACCOUNT}\" is not what this handler expects: #{problem}",
        error_code: TaskerWorker::ErrorCode::INVALID_INPUT
      )
    end
    private_class_method :text, :refuse
  end

  # The step whose result is the account.
  CREATE_USER_ACCOUNT = 'create_user_account'
end
